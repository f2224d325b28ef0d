"""docker-py (the Python docker SDK) against depot: the low-level client's pull, images and remove_image.
usage: docker_py.py SOCKET REGISTRY"""
import sys

import docker

sock, reg = sys.argv[1:3]
c = docker.APIClient(base_url="unix://" + sock, version="auto")
assert c.ping() is True
assert c.version()["ApiVersion"] == "1.47"
events = list(c.pull(f"{reg}/test", tag="1", stream=True, decode=True))
assert events[0] == {"status": "Pulling from test", "id": "1"}, events[0]
assert events[-1]["status"] == f"Status: Downloaded newer image for {reg}/test:1", events[-1]
imgs = c.images()
assert [i["RepoTags"] for i in imgs] == [[f"{reg}/test:1"]], imgs
assert c.images(name=f"{reg}/test") != []
assert c.images(filters={"dangling": True}) == []
try:
    c.pull(f"{reg}/test", tag="nope")
    raise SystemExit("pulling a missing tag must raise")
except docker.errors.NotFound as e:
    assert "manifest unknown" in str(e), e
res = c.remove_image(f"{reg}/test:1")
assert res[0] == {"Untagged": f"{reg}/test:1"}, res
assert "Deleted" in res[-1], res
try:
    c.remove_image(f"{reg}/test:1")
    raise SystemExit("removing twice must raise")
except docker.errors.ImageNotFound:
    pass
print("docker-py ok")
