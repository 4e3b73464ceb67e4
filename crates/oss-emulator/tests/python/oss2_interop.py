"""oss2 (V1 and V4) against the emulator: bucket, put, head, ranged get, resumable_download,
presigned URLs, a wrong secret, STS credentials. Prints one line per step; exits non-zero on
the first failure."""

import os
import sys

import oss2
import requests
from oss2.credentials import StaticCredentialsProvider

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (  # noqa: E402
    AK, ENDPOINT, KEY, LIST_DECOYS, LIST_KEYS, LIST_PREFIX, REGION, SK, STS_AK, STS_SK,
    STS_TOKEN, WORKDIR, check, crc64, data, delimited, list_content, md5_upper, read_file,
)

DATA = data()
CRC = crc64(DATA)
MD5 = md5_upper(DATA)


def auth(version, ak, sk, token=None):
    if version == "v1":
        return oss2.StsAuth(ak, sk, token) if token else oss2.Auth(ak, sk)
    return oss2.ProviderAuthV4(StaticCredentialsProvider(ak, sk, token or ""))


def bucket_for(version, name, ak=AK, sk=SK, token=None):
    kwargs = {"region": REGION} if version == "v4" else {}
    return oss2.Bucket(auth(version, ak, sk, token), ENDPOINT, name, **kwargs)


def run(version):
    name = "oss2-" + version
    bucket = bucket_for(version, name)
    bucket.create_bucket()
    info = bucket.get_bucket_info()
    check(info.name == name, f"{version}: bucket info names {info.name!r}")

    r = bucket.put_object(KEY, DATA)
    check(r.status == 200, f"{version}: put status {r.status}")
    check(r.etag == MD5, f"{version}: put etag {r.etag} != {MD5}")
    check(r.crc == CRC, f"{version}: put crc {r.crc} != {CRC}")

    meta = bucket.head_object(KEY)
    check(meta.content_length == len(DATA), f"{version}: head length {meta.content_length}")
    check(meta.etag == MD5, f"{version}: head etag {meta.etag}")
    check(int(meta.headers["x-oss-hash-crc64ecma"]) == CRC, f"{version}: head crc")
    check(meta.headers["x-oss-object-type"] == "Normal", f"{version}: object type")

    # Uploaded with a Content-MD5 (which the emulator checks), the object publishes it back
    # on HEAD and on whole GETs, as OSS does; a ranged GET does not carry it.
    md5_b64 = oss2.utils.content_md5(DATA)
    md5_key = KEY + ".md5"
    bucket.put_object(md5_key, DATA, headers={"Content-MD5": md5_b64})
    got_md5 = bucket.head_object(md5_key).headers.get("Content-MD5")
    check(got_md5 == md5_b64, f"{version}: head Content-MD5 {got_md5!r} != {md5_b64!r}")
    got_md5 = bucket.get_object(md5_key).headers.get("Content-MD5")
    check(got_md5 == md5_b64, f"{version}: get Content-MD5 {got_md5!r} != {md5_b64!r}")
    ranged = bucket.get_object(md5_key, byte_range=(0, 99)).headers.get("Content-MD5")
    check(ranged is None, f"{version}: ranged get Content-MD5 {ranged!r}")
    bucket.delete_object(md5_key)

    whole = bucket.get_object(KEY).read()  # oss2 checks the CRC-64 of a whole GET
    check(whole == DATA, f"{version}: whole get differs")

    part = bucket.get_object(KEY, byte_range=(100, 100 + 65535))
    got = part.read()
    check(part.status == 206, f"{version}: ranged get status {part.status}")
    check(got == DATA[100:100 + 65536], f"{version}: ranged get bytes differ")
    check(int(part.headers["x-oss-hash-crc64ecma"]) == CRC, f"{version}: ranged crc is whole-object")
    tail = bucket.get_object(KEY, byte_range=(None, 1000)).read()
    check(tail == DATA[-1000:], f"{version}: suffix range differs")

    dest = os.path.join(WORKDIR, f"oss2-{version}.bin")
    store = oss2.ResumableDownloadStore(root=WORKDIR)
    oss2.resumable_download(bucket, KEY, dest, store=store, multiget_threshold=128 * 1024,
                            part_size=128 * 1024, num_threads=3)
    check(read_file(dest) == DATA, f"{version}: resumable_download differs")

    url = bucket.sign_url("GET", KEY, 120)
    resp = requests.get(url, headers={"Accept-Encoding": "identity"})
    check(resp.status_code == 200 and resp.content == DATA,
          f"{version}: presigned GET {resp.status_code} {resp.text[:300]}")

    bad = bucket_for(version, name, sk="wrong-" + SK)
    try:
        bad.get_object(KEY).read()
        check(False, f"{version}: a wrong secret was accepted")
    except oss2.exceptions.ServerError as e:
        check(e.status == 403 and e.code == "SignatureDoesNotMatch",
              f"{version}: wrong secret gave {e.status} {e.code}")

    unknown = bucket_for(version, name, ak="no-such-key")
    try:
        unknown.head_object(KEY)
        check(False, f"{version}: an unknown AccessKey id was accepted")
    except oss2.exceptions.ServerError as e:
        check(e.status == 403, f"{version}: unknown key gave {e.status}")

    sts = bucket_for(version, name, STS_AK, STS_SK, STS_TOKEN)
    sts_key = KEY + ".sts"
    sts.put_object(sts_key, DATA[:5000])
    check(sts.get_object(sts_key).read() == DATA[:5000], f"{version}: STS get differs")
    sts_url = sts.sign_url("GET", sts_key, 120)
    resp = requests.get(sts_url, headers={"Accept-Encoding": "identity"})
    check(resp.status_code == 200 and resp.content == DATA[:5000],
          f"{version}: STS presigned GET {resp.status_code} {resp.text[:300]}")
    bad_token = bucket_for(version, name, STS_AK, STS_SK, "wrong-token")
    try:
        bad_token.get_object(sts_key).read()
        check(False, f"{version}: a wrong STS token was accepted")
    except oss2.exceptions.ServerError as e:
        check(e.status == 403, f"{version}: wrong token gave {e.status} {e.code}")

    bucket.delete_object(sts_key)
    try:
        bucket.head_object(sts_key)
        check(False, f"{version}: deleted object still there")
    except oss2.exceptions.NotFound:
        pass
    listing(version, bucket)
    print(f"oss2 {version}: ok")


def listing(version, bucket):
    """ObjectIterator (V1) and ObjectIteratorV2 over several pages, with a prefix, with a
    delimiter, and the raw calls' page fields; keys come back URL-decoded by the SDK."""
    for k in LIST_KEYS + LIST_DECOYS:
        bucket.put_object(k, list_content(k))
    sizes = {k: len(list_content(k)) for k in LIST_KEYS}

    for it_name, it in [
        ("ObjectIterator", oss2.ObjectIterator(bucket, prefix=LIST_PREFIX, max_keys=4)),
        ("ObjectIteratorV2", oss2.ObjectIteratorV2(bucket, prefix=LIST_PREFIX, max_keys=4)),
    ]:
        got = [(o.key, o.size, o.etag, o.type, o.storage_class) for o in it]
        keys = [g[0] for g in got]
        check(keys == LIST_KEYS, f"{version} {it_name}: keys {keys}")
        for key, size, etag, typ, sc in got:
            check(size == sizes[key], f"{version} {it_name}: size of {key!r} {size}")
            check(etag == md5_upper(list_content(key)), f"{version} {it_name}: etag {etag}")
            check(typ == "Normal" and sc == "Standard", f"{version} {it_name}: {typ} {sc}")

    want_objects, want_prefixes = delimited(LIST_KEYS, LIST_PREFIX, "/")
    for it_name, it in [
        ("ObjectIterator", oss2.ObjectIterator(bucket, prefix=LIST_PREFIX, delimiter="/", max_keys=3)),
        ("ObjectIteratorV2", oss2.ObjectIteratorV2(bucket, prefix=LIST_PREFIX, delimiter="/", max_keys=3)),
    ]:
        objects, prefixes = [], []
        for o in it:
            (prefixes if o.is_prefix() else objects).append(o.key)
        check(objects == want_objects, f"{version} {it_name} delimiter: objects {objects}")
        check(prefixes == want_prefixes, f"{version} {it_name} delimiter: prefixes {prefixes}")

    # One page by hand: the fields the iterators rely on.
    r = bucket.list_objects_v2(prefix=LIST_PREFIX, max_keys=5, fetch_owner=True)
    check(r.is_truncated and r.next_continuation_token, f"{version}: v2 page not truncated")
    check([o.key for o in r.object_list] == LIST_KEYS[:5], f"{version}: v2 first page")
    check(all(o.owner is not None for o in r.object_list), f"{version}: fetch-owner ignored")
    r2 = bucket.list_objects_v2(prefix=LIST_PREFIX, max_keys=5,
                                continuation_token=r.next_continuation_token)
    check([o.key for o in r2.object_list] == LIST_KEYS[5:10], f"{version}: v2 second page")
    check(all(o.owner is None for o in r2.object_list), f"{version}: owner without fetch-owner")
    r3 = bucket.list_objects_v2(prefix=LIST_PREFIX, start_after=LIST_KEYS[-2])
    check([o.key for o in r3.object_list] == LIST_KEYS[-1:] and not r3.is_truncated,
          f"{version}: start-after")
    r4 = bucket.list_objects(prefix=LIST_PREFIX, marker=LIST_KEYS[2], max_keys=2)
    check([o.key for o in r4.object_list] == LIST_KEYS[3:5] and r4.next_marker == LIST_KEYS[4],
          f"{version}: v1 marker page {[o.key for o in r4.object_list]} {r4.next_marker!r}")
    empty = bucket.list_objects_v2(prefix="nothing/")
    check(empty.object_list == [] and not empty.is_truncated, f"{version}: empty prefix")
    try:
        bucket.list_objects_v2(prefix=LIST_PREFIX, max_keys=1001)
        check(False, f"{version}: max-keys 1001 accepted")
    except oss2.exceptions.ServerError as e:
        check(e.status == 400 and e.code == "InvalidArgument", f"{version}: max-keys {e.code}")
    for k in LIST_KEYS + LIST_DECOYS:
        bucket.delete_object(k)


run("v1")
run("v4")
print("OK oss2")
