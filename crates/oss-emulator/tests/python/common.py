"""Shared helpers for the interop scripts: settings from the environment, test data, CRC-64."""

import hashlib
import os
import random
import sys

ENDPOINT = os.environ["OSS_EMU_ENDPOINT"]
AK = os.environ["OSS_EMU_AK"]
SK = os.environ["OSS_EMU_SK"]
STS_AK = os.environ["OSS_EMU_STS_AK"]
STS_SK = os.environ["OSS_EMU_STS_SK"]
STS_TOKEN = os.environ["OSS_EMU_STS_TOKEN"]
WORKDIR = os.environ["OSS_EMU_WORKDIR"]
REGION = "cn-hangzhou"

# A key with characters that need encoding (space, plus, percent, unicode, slashes).
KEY = "dir/sub dir/obj +1%_\u00e9.bin"
SIZE = 1024 * 1024 + 12345


def data(seed=4242, size=SIZE):
    return random.Random(seed).randbytes(size)


def md5_upper(b):
    return hashlib.md5(b).hexdigest().upper()


_POLY = 0xC96C5795D7870F42
_TABLE = []
for i in range(256):
    c = i
    for _ in range(8):
        c = (c >> 1) ^ _POLY if c & 1 else c >> 1
    _TABLE.append(c)


def crc64(b):
    """CRC-64/XZ (OSS's x-oss-hash-crc64ecma), independent of both SDKs."""
    crc = 0xFFFFFFFFFFFFFFFF
    for x in b:
        crc = _TABLE[(crc ^ x) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFFFFFFFFFF


def check(cond, what):
    if not cond:
        print("FAILED: " + what, file=sys.stderr)
        sys.exit(1)


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


# Keys for the listing checks: several pages at small max-keys, a key that is also a prefix,
# a folder marker, and keys that need URL encoding (space, +, %, NFC and NFD, CJK).
LIST_PREFIX = "ls/"
LIST_KEYS = sorted(
    [f"ls/k-{i:02d}" for i in range(15)]
    + ["ls/dir/a", "ls/dir/b/c", "ls/dir-x", "ls/both", "ls/both/inner", "ls/folder/",
       "ls/sp ace+plus%.txt", "ls/caf\u00e9", "ls/cafe\u0301", "ls/\u65e5\u672c/\u8a9e",
       "ls/amp&lt<gt>"]
)
LIST_DECOYS = ["lsx/no", "l", "ls"]


def list_content(key):
    """A distinct small body per key (its size tells the keys apart)."""
    return (key.encode() * 3)[: 1 + LIST_KEYS.index(key)] if key in LIST_KEYS else b"d"


def delimited(keys, prefix, delimiter):
    """What a listing with a delimiter must return: (objects, common prefixes)."""
    objects, prefixes = [], set()
    for k in keys:
        if not k.startswith(prefix):
            continue
        rest = k[len(prefix):]
        i = rest.find(delimiter)
        if i >= 0:
            prefixes.add(prefix + rest[: i + len(delimiter)])
        else:
            objects.append(k)
    return sorted(objects), sorted(prefixes)
