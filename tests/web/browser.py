"""The owner's page in a real browser (Debian's chromium, headless, driven by selenium), against a depot daemon
this script starts and restarts itself and the real registries of tests/peers. Every step asserts what a person
would see. Run by tests/web.rs; the environment names the daemon's binary, its data root, the registries and
where the screenshots go.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

BIN = os.environ["DEPOT_BIN"]
ROOT = os.environ["DEPOT_ROOT"]
PLAIN = os.environ["PLAIN"]
BASIC = os.environ["BASIC"]
SHOTS = os.environ["SHOTS"]
PASSWORD = "correct horse battery"
os.makedirs(SHOTS, exist_ok=True)


def port_open(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return True
    except OSError:
        return False


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


PORT = free_port()
URL = f"http://127.0.0.1:{PORT}/"
LAN = free_port()
CONFIG = os.path.join(ROOT + ".conf")
with open(CONFIG, "w") as f:
    f.write(f"admin_password = {PASSWORD}\n")


class Daemon:
    def __init__(self):
        self.proc = None

    def start(self):
        log = open(ROOT + ".log", "a")
        self.proc = subprocess.Popen(
            [BIN, "serve", "--data-root", ROOT, "--socket", ROOT + ".sock", "--tcp", f"127.0.0.1:{PORT}",
             "--config", CONFIG, "--bandwidth-limit", "400k", "--log-level", "debug",
             "--registry", f"127.0.0.1:{LAN}"],
            stdout=subprocess.DEVNULL, stderr=log, stdin=subprocess.DEVNULL)
        for _ in range(200):
            try:
                urllib.request.urlopen(URL + "_ping", timeout=1)
                return
            except Exception:
                time.sleep(0.05)
        raise RuntimeError("depot did not start")

    def kill9(self):
        if self.proc:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            self.proc = None


def main():
    daemon = Daemon()
    daemon.start()
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for a in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--disable-dev-shm-usage", "--window-size=1280,900",
              f"--user-data-dir={ROOT}.chromium"]:
        opts.add_argument(a)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    driver.set_page_load_timeout(30)
    wait = WebDriverWait(driver, 30)
    try:
        run(driver, wait, daemon)
        console = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"
                   and "401" not in e["message"] and "429" not in e["message"]
                   and "507" not in e["message"] and "downloads/events" not in e["message"]]
        assert not console, f"errors in the page's console: {console}"
    except Exception:
        driver.save_screenshot(os.path.join(SHOTS, "failure.png"))
        print("page at failure:\n" + driver.find_element(By.TAG_NAME, "body").text, file=sys.stderr)
        raise
    finally:
        driver.quit()
        daemon.kill9()
    print("browser: every step passed")


def shot(driver, name, phone=False, dark=False):
    """A screenshot at desktop and phone width (and in the dark theme when asked)."""
    if dark:
        driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": "dark"}]})
    driver.set_window_size(1280, 900)
    time.sleep(0.2)
    driver.save_screenshot(os.path.join(SHOTS, f"{name}{'-dark' if dark else ''}.png"))
    if phone:
        driver.set_window_size(390, 844)
        time.sleep(0.3)
        driver.save_screenshot(os.path.join(SHOTS, f"{name}-phone{'-dark' if dark else ''}.png"))
        driver.set_window_size(1280, 900)
    if dark:
        driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": "light"}]})


def text_of(driver, css):
    return driver.find_element(By.CSS_SELECTOR, css).text


def wait_text(wait, css, text):
    wait.until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, css), text))


def go(driver, wait, view):
    driver.find_element(By.CSS_SELECTOR, f'nav a[data-view="{view}"]').click()
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, f'nav a[data-view="{view}"]').get_attribute("aria-current") == "page")


def login(driver, wait, password, expect_ok=True):
    user = driver.find_element(By.ID, "login-user")
    user.clear()
    user.send_keys("admin")
    pw = driver.find_element(By.ID, "login-password")
    pw.clear()
    pw.send_keys(password + Keys.ENTER)  # the keyboard submits the form
    if expect_ok:
        wait.until(EC.visibility_of_element_located((By.ID, "top")))


def run(driver, wait, daemon):
    driver.get(URL)
    wait.until(EC.visibility_of_element_located((By.ID, "login-form")))
    shot(driver, "login", phone=True)
    # a wrong password says so in words
    login(driver, wait, "wrong", expect_ok=False)
    wait_text(wait, "#login-error", "Wrong user name or password")
    # after several, the slowdown is explained (each attempt waits for the answer to the one before)
    button = driver.find_element(By.CSS_SELECTOR, "#login-form button")
    for _ in range(8):
        wait.until(lambda d: button.is_enabled())
        login(driver, wait, "wrong again", expect_ok=False)
        time.sleep(0.2)
        wait.until(lambda d: button.is_enabled())
        if "Too many failed attempts" in text_of(driver, "#login-error"):
            break
    wait_text(wait, "#login-error", "Too many failed attempts")
    shot(driver, "login-slowed")
    # the right password, once the delay is over
    for _ in range(30):
        wait.until(lambda d: button.is_enabled())
        login(driver, wait, PASSWORD, expect_ok=False)
        try:
            WebDriverWait(driver, 2).until(EC.visibility_of_element_located((By.ID, "top")))
            break
        except TimeoutException:
            time.sleep(1)
    assert driver.find_element(By.ID, "top").is_displayed(), "logged in"
    wait_text(wait, "#user", "admin")
    # the session survives a reload
    driver.refresh()
    wait.until(EC.visibility_of_element_located((By.ID, "top")))
    assert not driver.find_element(By.ID, "login").is_displayed()
    # the space bar speaks of the volume
    wait_text(wait, "#space", "free of")

    # a private registry: added (verified on save), then listed without its password
    go(driver, wait, "registries")
    add_registry(driver, wait, "plain", f"http://{PLAIN}", "", "", insecure=True)
    add_registry(driver, wait, "basic", f"http://{BASIC}", "testuser", "testpass", insecure=True)
    wait_text(wait, "main table tbody", "basic")
    body = text_of(driver, "main table tbody")
    assert "testpass" not in driver.page_source, "the password is never shown"
    assert "(password kept)" in body, body
    # a wrong password is refused at save, in words
    add_registry(driver, wait, "broken", f"http://{BASIC}", "testuser", "nope", insecure=True, expect_error=True)
    # the Docker Hub mirror setting
    mirror = driver.find_element(By.CSS_SELECTOR, 'input[aria-label="Docker Hub mirror"]')
    mirror.clear()
    mirror.send_keys(f"http://{PLAIN}")
    mirror.find_element(By.XPATH, "ancestor::form//button").click()
    wait_text(wait, "#toast", "Mirrors saved")
    # the LAN registry's switch: on (configured), then off and on again, its listener following
    lan = driver.find_element(By.CSS_SELECTOR, 'input[aria-label="Serve images to the LAN"]')
    wait_text(wait, "main .lan-info", f"https://127.0.0.1:{LAN}")
    assert lan.is_selected()
    assert "download the CA" in text_of(driver, "main .lan-info")
    lan.click()
    wait_text(wait, "#toast", "The LAN registry is off")
    assert not port_open(LAN), "the listener closed"
    lan.click()
    wait_text(wait, "#toast", "The LAN registry is on")
    assert port_open(LAN), "the listener is back"
    shot(driver, "registries", phone=True)

    # find and get from the private registry with a password: tag, size before downloading, download
    go(driver, wait, "get")
    wait.until(EC.presence_of_element_located(
        (By.XPATH, f'//select[@aria-label="Where to look"]/option[text()="Registry basic ({BASIC})"]')))
    Select(driver.find_element(By.CSS_SELECTOR, 'select[aria-label="Where to look"]')).select_by_visible_text(f"Registry basic ({BASIC})")
    driver.find_element(By.CSS_SELECTOR, 'input[aria-label="Search"]').send_keys("test" + Keys.ENTER)
    wait.until(EC.element_to_be_clickable((By.XPATH, '//button[text()="Choose a tag"]'))).click()
    tag = wait.until(EC.visibility_of_element_located((By.CSS_SELECTOR, '.pick input[aria-label="Tag"]')))
    tag.clear()
    tag.send_keys("1" + Keys.TAB)
    wait_text(wait, ".pick .muted", "to download")
    size_line = text_of(driver, ".pick .muted")
    assert "kB" in size_line or "MB" in size_line, size_line
    shot(driver, "get", phone=True)
    driver.find_element(By.XPATH, '//div[@class="pick"]//button[text()="Download"]').click()

    # the download: a progress bar that reaches 100 %, pushed by the server
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, 'nav a[data-view="downloads"]').get_attribute("aria-current") == "page")
    row = wait.until(EC.visibility_of_element_located((By.XPATH, '//div[@class="dl"][.//div[contains(@class,"name") and contains(., "test:1")]]')))
    seen_partial = False
    for _ in range(400):
        v = row.find_element(By.TAG_NAME, "progress").get_attribute("value")
        if v and 0 < float(v) < 100:
            seen_partial = True
            shot(driver, "downloads", phone=True)
        if row.find_element(By.CSS_SELECTOR, ".status").text.lower() == "complete":
            break
        time.sleep(0.1)
    assert row.find_element(By.CSS_SELECTOR, ".status").text.lower() == "complete", row.text
    assert float(row.find_element(By.TAG_NAME, "progress").get_attribute("value")) == 100.0
    assert "100%" in row.text, row.text
    assert seen_partial, "the bar moved through the download, not just to its end"

    # pause and resume, across a daemon restart: the page keeps its live updates
    start_download(driver, wait, "plain", "multi", "1")
    row = wait.until(EC.visibility_of_element_located((By.XPATH, '//div[@class="dl"][.//div[contains(@class,"name") and contains(., "multi:1")]]')))
    wait.until(lambda d: "downloading" in row.find_element(By.CSS_SELECTOR, ".status").text.lower())
    row.find_element(By.XPATH, './/button[text()="Pause"]').click()
    wait.until(lambda d: row.find_element(By.CSS_SELECTOR, ".status").text.lower() == "paused")
    daemon.kill9()
    daemon.start()
    # the stream reconnects by itself: the list is still live (the paused download is still paused)
    time.sleep(3)
    row = wait.until(EC.visibility_of_element_located((By.XPATH, '//div[@class="dl"][.//div[contains(@class,"name") and contains(., "multi:1")]]')))
    assert row.find_element(By.CSS_SELECTOR, ".status").text.lower() == "paused"
    row.find_element(By.XPATH, './/button[text()="Resume"]').click()
    wait.until(lambda d: d.find_element(By.XPATH, '//div[@class="dl"][.//div[contains(., "multi:1")]]//span[contains(@class,"status")]').text.lower() in ("downloading", "complete"))
    WebDriverWait(driver, 120).until(lambda d: d.find_element(By.XPATH, '//div[@class="dl"][.//div[contains(., "multi:1")]]//span[contains(@class,"status")]').text.lower() == "complete")
    shot(driver, "downloads-done", phone=True, dark=True)

    # an oversized download is refused before it starts, with the sizes in words
    start_download(driver, wait, "plain", "big", "1", expect_error=True)
    msg = driver.find_element(By.CSS_SELECTOR, "main .error").text
    assert "not enough space" in msg or "cannot fit" in msg or "needs" in msg, msg
    shot(driver, "oversized")

    # images: listed with size, created and architecture; a delete names what it frees
    go(driver, wait, "images")
    wait_text(wait, "main table tbody", "test")
    table = text_of(driver, "main table tbody")
    assert "amd64" in table and "MB" in table or "kB" in table, table
    shot(driver, "images", phone=True, dark=True)
    shot(driver, "images")
    del_button = driver.find_element(By.XPATH, '//button[@aria-label="Delete ' + BASIC + '/test:1"]')
    del_button.click()
    dialog = wait.until(EC.visibility_of_element_located((By.ID, "confirm")))
    assert "frees" in dialog.text and ("kB" in dialog.text or "MB" in dialog.text), dialog.text
    driver.find_element(By.ID, "confirm-ok").click()
    wait_text(wait, "#toast", "Deleted")
    wait.until(lambda d: BASIC + "/test" not in text_of(d, "main table tbody"))

    # an offline bundle uploaded from the page: made of multi:1 by the CLI, multi:1 removed, then brought back
    bundle = ROOT + "-bundle.tar"
    multi = PLAIN + "/multi:1"
    cli = [BIN, "-H", ROOT + ".sock"]
    subprocess.run(cli + ["bundle", "create", "-o", bundle, multi], check=True, capture_output=True)
    subprocess.run(cli + ["rm", multi], check=True, capture_output=True)
    driver.refresh()
    wait.until(EC.visibility_of_element_located((By.ID, "top")))
    wait_text(wait, "main table tbody", "Nothing here yet")
    driver.find_element(By.CSS_SELECTOR, 'input[aria-label="Import a bundle"]').send_keys(bundle)
    wait_text(wait, "#toast", "Imported " + PLAIN + "/multi:1")
    wait_text(wait, "main table tbody", "multi")
    # a file that is no bundle is refused in words, and nothing changes
    junk = ROOT + "-junk.tar"
    with open(junk, "wb") as f:
        f.write(b"x" * 4096)
    driver.find_element(By.CSS_SELECTOR, 'input[aria-label="Import a bundle"]').send_keys(junk)
    wait_text(wait, "#toast", "The bundle was not imported")

    # activity
    go(driver, wait, "events")
    wait_text(wait, "ul.events", "download")
    shot(driver, "events", phone=True)

    # keyboard: every view is reachable with Tab and Enter
    driver.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
    for _ in range(8):
        active = driver.switch_to.active_element
        if active.get_attribute("data-view") == "downloads":
            active.send_keys(Keys.ENTER)
            break
        active.send_keys(Keys.TAB)
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, 'nav a[data-view="downloads"]').get_attribute("aria-current") == "page")

    # logout ends the session: a reload shows the login
    driver.find_element(By.ID, "logout").click()
    wait.until(EC.visibility_of_element_located((By.ID, "login-form")))
    driver.refresh()
    wait.until(EC.visibility_of_element_located((By.ID, "login-form")))


def add_registry(driver, wait, name, url, user, password, insecure, expect_error=False):
    forms = driver.find_elements(By.CSS_SELECTOR, "form.grid2")
    f = forms[-1]
    for label, value in [("Name", name), ("URL", url), ("User", user), ("Password", password)]:
        e = f.find_element(By.CSS_SELECTOR, f'input[aria-label="{label}"]')
        e.clear()
        if value:
            e.send_keys(value)
    box = f.find_element(By.CSS_SELECTOR, 'input[type="checkbox"]')
    if box.is_selected() != insecure:
        box.click()
    f.find_element(By.CSS_SELECTOR, 'button[type="submit"]').click()
    if expect_error:
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "form.grid2")[-1].find_element(By.CSS_SELECTOR, ".error").text != "")
        err = driver.find_elements(By.CSS_SELECTOR, "form.grid2")[-1].find_element(By.CSS_SELECTOR, ".error").text
        assert err, "an error is shown"
        return
    wait_text(wait, "#toast", "Added " + name)
    wait_text(wait, "main table tbody", name)


def start_download(driver, wait, registry, repo, tag, expect_error=False):
    go(driver, wait, "get")
    # the view is drawn once it has the registries: wait for this one's option, not only for the nav
    label = f"Registry {registry} ({PLAIN if registry == 'plain' else BASIC})"
    wait.until(EC.presence_of_element_located(
        (By.XPATH, f'//select[@aria-label="Where to look"]/option[text()="{label}"]')))
    Select(driver.find_element(By.CSS_SELECTOR, 'select[aria-label="Where to look"]')).select_by_visible_text(label)
    term = driver.find_element(By.CSS_SELECTOR, 'input[aria-label="Search"]')
    term.clear()
    term.send_keys(repo + Keys.ENTER)
    wait.until(EC.element_to_be_clickable((By.XPATH, '//button[text()="Choose a tag"]'))).click()
    t = wait.until(EC.visibility_of_element_located((By.CSS_SELECTOR, '.pick input[aria-label="Tag"]')))
    t.clear()
    t.send_keys(tag + Keys.TAB)
    wait_text(wait, ".pick .muted", "to download")
    driver.find_element(By.XPATH, '//div[@class="pick"]//button[text()="Download"]').click()
    if expect_error:
        wait.until(EC.visibility_of_element_located((By.CSS_SELECTOR, "main .error")))
    else:
        wait.until(lambda d: d.find_element(By.CSS_SELECTOR, 'nav a[data-view="downloads"]').get_attribute("aria-current") == "page")


if __name__ == "__main__":
    main()
