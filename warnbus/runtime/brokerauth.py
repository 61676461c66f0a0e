"""The MQTT broker's accounts and ACL: the engine's account, and one per loudspeaker.

In mosquitto's own formats, so the same text serves the embedded broker of `warnbus serve`
and a county's production broker (`deploy/`, `warnbus broker ...`):

- the password file: `user:$7$iterations$salt$hash` lines (PBKDF2-SHA512, the format
  `mosquitto_passwd` writes);
- the ACL file: the engine publishes commands and reads acks and statuses; a device (its
  user name is its device id) publishes only its own `dev/{id}/ack` and `dev/{id}/status`,
  and subscribes only to its own `dev/{id}/cmd` (`pattern` lines with `%u`) and to its
  area's `area/{code}/cmd` and `area/{code}/active/+` (a `user` block per device, from the
  registry's device → area mapping).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import re
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from warnbus.errors import ConfigError

ENGINE_USER = "warnbus"
DEFAULT_PREFIX = "wb/v1"
PBKDF2_ITERATIONS = 101  # mosquitto_passwd's default for $7$
# A device id is a user name and a topic level: mosquitto refuses %u patterns for names with
# '+', '#' or '/', and so do we, before the broker would.
_DEVICE_ID = re.compile(r"[0-9A-Za-z][0-9A-Za-z_.:-]{0,127}")
_AREA = re.compile(r"\d{6,12}")


def hash_password(password: str, *, salt: bytes | None = None,
                  iterations: int = PBKDF2_ITERATIONS) -> str:
    """A password file hash as mosquitto_passwd writes it (`$7$`, PBKDF2-SHA512)."""
    salt = salt if salt is not None else secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return (f"$7${iterations}${base64.b64encode(salt).decode()}"
            f"${base64.b64encode(digest).decode()}")


def check_device(device_id: str, area: str | None = None, *,
                 engine_user: str = ENGINE_USER) -> None:
    """ConfigError unless the id can be a broker user name and topic level (and area a code)."""
    if not _DEVICE_ID.fullmatch(device_id):
        raise ConfigError(f"device id {device_id[:64]!r} cannot be a broker user name: use "
                          "1-128 of A-Z a-z 0-9 _ . : - (starting with a letter or digit)")
    if device_id == engine_user:
        raise ConfigError(f"device id {device_id!r} is the engine's broker account")
    if area is not None and not _AREA.fullmatch(area):
        raise ConfigError(f"device {device_id}: area {area[:32]!r} is not a 6-12 digit code")


def acl_text(devices: Iterable[tuple[str, str]], *, prefix: str = DEFAULT_PREFIX,
             engine_user: str = ENGINE_USER) -> str:
    """The ACL file for the engine and these (device id, area code) pairs."""
    p = prefix
    lines = [
        "# warnbus MQTT ACL (written by `warnbus broker acl`; regenerate when devices change).",
        "# The engine: publish commands (area, retained active copies, device), read reports.",
        f"user {engine_user}",
        f"topic write {p}/area/+/cmd",
        f"topic write {p}/area/+/active/+",
        f"topic write {p}/dev/+/cmd",
        f"topic read {p}/dev/+/ack",
        f"topic read {p}/dev/+/status",
        "",
        "# Every device (user name = device id): its own reports and its own command topic.",
        f"pattern write {p}/dev/%u/ack",
        f"pattern write {p}/dev/%u/status",
        f"pattern read {p}/dev/%u/cmd",
        "",
        "# Each device's area: its commands and the retained active warnings.",
    ]
    for device_id, area in sorted(devices):
        check_device(device_id, area, engine_user=engine_user)
        lines += [f"user {device_id}", f"topic read {p}/area/{area}/cmd",
                  f"topic read {p}/area/{area}/active/+"]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class BrokerAccounts:
    """Fresh accounts of an embedded broker: the engine's and one per simulated device."""

    devices: tuple[tuple[str, str], ...]  # (device id, area code)
    engine_password: str = field(repr=False)
    device_passwords: Mapping[str, str] = field(repr=False)
    prefix: str = DEFAULT_PREFIX
    engine_user: str = ENGINE_USER

    @classmethod
    def generate(cls, devices: Iterable[tuple[str, str]],
                 prefix: str = DEFAULT_PREFIX) -> BrokerAccounts:
        pairs = tuple(sorted(devices))
        for device_id, area in pairs:
            check_device(device_id, area)
        return cls(pairs, secrets.token_urlsafe(24),
                   {d: secrets.token_urlsafe(18) for d, _ in pairs}, prefix)

    def passwd_text(self) -> str:
        users = [(self.engine_user, self.engine_password), *self.device_passwords.items()]
        return "".join(f"{user}:{hash_password(pw)}\n" for user, pw in users)

    def acl_text(self) -> str:
        return acl_text(self.devices, prefix=self.prefix, engine_user=self.engine_user)

    def userinfo(self) -> str:
        """`user:password@` of the engine's account, for its mqtt:// URL."""
        return f"{quote(self.engine_user, safe='')}:{quote(self.engine_password, safe='')}@"


# --------------------------------------------------------------------------- `warnbus broker`


def set_password(passwd_file: Path, user: str, password: str) -> None:
    """Add or replace `user` in a mosquitto password file, hashed by mosquitto_passwd when
    it is installed (Debian's mosquitto package), else by the same $7$ scheme here."""
    tool = shutil.which("mosquitto_passwd")
    if tool is not None:
        if not passwd_file.exists():
            passwd_file.touch(mode=0o600)
        # -b takes the password as an argument: only on the machine that writes the file.
        subprocess.run([tool, "-b", str(passwd_file), user, password], check=True,
                       capture_output=True)
        return
    lines = passwd_file.read_text(encoding="utf-8").splitlines() if passwd_file.exists() else []
    kept = [line for line in lines if line.split(":", 1)[0] != user]
    passwd_file.write_text("\n".join([*kept, f"{user}:{hash_password(password)}"]) + "\n",
                           encoding="utf-8")


def broker_main(argv: Sequence[str]) -> int:
    """`warnbus broker acl|add-device ...`: write the broker's ACL and device accounts."""
    p = argparse.ArgumentParser(prog="warnbus broker", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("acl", help="the ACL file for the registry's devices (stdout or --out)")
    a.add_argument("--registry", help="registry directory (default: the bundled sample county)")
    a.add_argument("--prefix", default=DEFAULT_PREFIX, help="topic prefix (default wb/v1)")
    a.add_argument("--engine-user", default=ENGINE_USER)
    a.add_argument("--out", help="write here instead of stdout")
    d = sub.add_parser("add-device", help="give devices accounts in a password file; prints "
                       "each device's new password once")
    d.add_argument("devices", nargs="+", metavar="DEVICE_ID")
    d.add_argument("--passwd", required=True, help="the mosquitto password file to update")
    args = p.parse_args(list(argv))
    if args.cmd == "acl":
        from warnbus.registry import default_registry_path, load_registry

        registry = load_registry(args.registry or default_registry_path())
        text = acl_text(((dev.id, dev.region) for dev in registry.data.devices.values()),
                        prefix=args.prefix, engine_user=args.engine_user)
        if args.out:
            Path(args.out).write_text(text, encoding="utf-8")
        else:
            sys.stdout.write(text)
        return 0
    for device_id in args.devices:
        check_device(device_id)
    for device_id in args.devices:
        password = secrets.token_urlsafe(18)
        set_password(Path(args.passwd), device_id, password)
        print(f"{device_id} {password}")
    return 0
