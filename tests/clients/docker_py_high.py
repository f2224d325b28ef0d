"""docker-py's high-level client against depot: registry data, images.pull/list/get/tag/save/load/remove/prune,
events, df, info.
usage: docker_py_high.py SOCKET REGISTRY [PRIVATE-REGISTRY]"""
import sys
import time

import docker

sock, reg = sys.argv[1:3]
private = sys.argv[3] if len(sys.argv) > 3 else None
c = docker.DockerClient(base_url="unix://" + sock, version="auto")
since = int(time.time()) - 1
rd = c.images.get_registry_data(f"{reg}/test:1")  # /distribution/{name}/json, nothing pulled
assert rd.id.startswith("sha256:") and rd.has_platform("linux/amd64"), rd.attrs
assert c.images.list() == []
img = c.images.pull(f"{reg}/test", tag="1")  # pulls, then inspects
assert img.tags == [f"{reg}/test:1"], img.tags
assert img.id.startswith("sha256:"), img.id
assert img.labels == {"org.example.test": "1"}, img.labels
assert img.attrs["RootFS"]["Type"] == "layers"
assert [i.id for i in c.images.list()] == [img.id]
assert c.images.get(f"{reg}/test:1").id == img.id
assert img.tag("pytag", "v1") is True
assert sorted(c.images.get(img.id).tags) == sorted([f"{reg}/test:1", "pytag:v1"])
hist = img.history()
assert hist[0]["Id"] == img.id and hist[0]["Tags"], hist
try:
    c.images.get("nope:1")
    raise SystemExit("get of a missing image must raise")
except docker.errors.ImageNotFound:
    pass
info = c.info()
assert info["Images"] == 1 and info["Swarm"]["LocalNodeState"] == "inactive", info
df = c.df()
assert df["Images"][0]["Id"] == img.id and df["LayersSize"] > 0, df
saved = b"".join(img.save(named=True))
assert saved[257:262] == b"ustar", "a tar archive"
c.images.remove("pytag:v1")
c.images.remove(f"{reg}/test:1")
assert c.images.list() == []
loaded = c.images.load(saved)
assert [i.id for i in loaded] == [img.id], loaded
c.images.remove(img.id, force=True)
pruned = c.images.prune(filters={"dangling": False})
assert pruned["ImagesDeleted"] is None and pruned["SpaceReclaimed"] == 0, pruned
actions = [e["Action"] for e in c.events(since=since, until=int(time.time()) + 1, decode=True)]
assert actions[:3] == ["pull", "tag", "save"], actions
assert "load" in actions, actions
assert "delete" in actions and actions[-1] == "prune", actions
if private:
    # login and push with the credentials docker-py keeps for the registry
    res = c.login(username="testuser", password="testpass", registry=private)
    assert res["Status"] == "Login Succeeded", res
    img = c.images.pull(f"{reg}/test", tag="1")
    dst = f"{private}/py-{int(time.time() * 1e6)}/test"
    assert img.tag(dst, "1")
    lines = list(c.images.push(dst, tag="1", stream=True, decode=True))
    assert any("aux" in l for l in lines), lines
    assert not any("error" in l for l in lines), lines
    try:
        c.login(username="testuser", password="wrong", registry=private, reauth=True)
        raise SystemExit("a wrong password must raise")
    except docker.errors.APIError as e:
        assert e.status_code == 401, e
print("docker-py high-level ok")
