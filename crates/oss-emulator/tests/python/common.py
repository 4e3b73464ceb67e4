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
