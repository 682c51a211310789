"""Settings, the config file with its profiles, and where provisioning credentials come from.

Credentials are resolved in this documented order (the first source that has a key wins):

1. ``--profile NAME`` given on the command line: that profile (see 3).
2. ``CONDUCTOR_AUTH_KEY`` and ``CONDUCTOR_AUTH_SECRET`` in the environment, with the server from
   ``CONDUCTOR_SERVER_URL`` (``--server`` naming another server is an error), else from ``--server``.
3. A profile of the config file, ``$XDG_CONFIG_HOME/orkes-provision/config.toml``
   (``ORKES_PROVISION_CONFIG`` overrides the path): the one named by ``ORKES_PROVISION_PROFILE``,
   else the one whose server is ``--server``/``CONDUCTOR_SERVER_URL``, else ``default_profile``,
   else ``default``. The file holds the server and key id; the secret is in the keyring under
   service ``orkes-provision``, user ``profile:<NAME>@<server URL>``.
4. ``sandbox``, when no profile of that name exists: the local sandbox's ``admin.env`` in its
   data directory, written by ``provision sandbox`` on first start.

A credential is never sent to another server than the one it came with: ``--server`` naming a
different server than the profile, or than ``CONDUCTOR_SERVER_URL`` for the environment's key, is
an error. Nothing else (a project or environment file) chooses the server of these credentials.
Key ids and secrets are stripped of surrounding whitespace and newlines.

The config file looks like::

    default_profile = "prod"
    default_store = "keyring"

    [profiles.prod]
    server = "https://example.orkesconductor.io/api"
    key_id = "2b7e..."
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from orkes_provision import trust
from orkes_provision.errors import ConfigError, NotFound, ProvisionError, StoreError, UsageError
from orkes_provision.fileio import write_private_file
from orkes_provision.orkes.models import Credentials
from orkes_provision.orkes.urls import normalize_server_url
from orkes_provision.toml.read import parse_toml, validation_error

__all__ = [
    "DEFAULT_PROFILE", "PROFILE_KEYRING_SERVICE", "Config", "Profile", "Settings", "config_path",
    "delete_profile", "keyring_location", "list_profiles", "load_config", "normalize_server_url",
    "profile_keyring_user", "resolve_credentials", "sandbox_data_dir", "save_profile",
]

log = logging.getLogger("orkes_provision.credentials.settings")

PROFILE_KEYRING_SERVICE = "orkes-provision"
SANDBOX_PROFILE = "sandbox"
DEFAULT_PROFILE = "default"
_PROFILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_NO_CREDENTIALS_HINT = ("set CONDUCTOR_SERVER_URL, CONDUCTOR_AUTH_KEY and CONDUCTOR_AUTH_SECRET, "
                        "run 'provision login', or use --profile sandbox")
_BROKEN_CONFIG_HINT = "fix the file, or remove it and run 'provision login' again"
_NO_KEYRING_FOR_LOGIN_HINT = ("run 'provision login' where a Secret Service (GNOME Keyring, KWallet) is unlocked, "
                              "or skip it and set CONDUCTOR_SERVER_URL, CONDUCTOR_AUTH_KEY and CONDUCTOR_AUTH_SECRET")


# Set while ``Settings.from_env`` builds settings from a mapping: os.environ must not leak in.
_MAPPING_ONLY: ContextVar[bool] = ContextVar("orkes_provision_settings_mapping_only", default=False)


class Settings(BaseSettings):
    """What the environment configures. ``Settings()`` reads ``os.environ``; ``from_env`` a mapping."""

    model_config = SettingsConfigDict(populate_by_name=True, extra="ignore", case_sensitive=True)

    server_url: str | None = Field(default=None, validation_alias="CONDUCTOR_SERVER_URL")
    auth_key: str | None = Field(default=None, validation_alias="CONDUCTOR_AUTH_KEY")
    auth_secret: SecretStr | None = Field(default=None, validation_alias="CONDUCTOR_AUTH_SECRET")
    profile: str | None = Field(default=None, validation_alias="ORKES_PROVISION_PROFILE")
    config: Path | None = Field(default=None, validation_alias="ORKES_PROVISION_CONFIG")
    store: str | None = Field(default=None, validation_alias="ORKES_PROVISION_STORE")
    # Seconds a request may take with its retries and waits (the CLI's --timeout).
    timeout: float = Field(default=30.0, gt=0, validation_alias="ORKES_PROVISION_TIMEOUT")

    @field_validator("timeout", mode="before")
    @classmethod
    def _duration(cls, value: object) -> object:
        # ORKES_PROVISION_TIMEOUT takes what --timeout takes: 45, 45s, 2m.
        if isinstance(value, str) and value.strip() and not value.strip().replace(".", "", 1).isdigit():
            from orkes_provision.durations import parse_duration

            try:
                return parse_duration(value).total_seconds()
            except ProvisionError as err:
                raise ValueError(err.message) from None
        return value
    xdg_config_home: Path | None = Field(default=None, validation_alias="XDG_CONFIG_HOME")
    home: Path | None = Field(default=None, validation_alias="HOME")

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        if _MAPPING_ONLY.get():
            return (init_settings,)
        return (init_settings, env_settings, dotenv_settings, file_secret_settings)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Settings from the mapping ``env`` instead of ``os.environ`` (blank values count as unset)."""
        names = [field.validation_alias for field in cls.model_fields.values()]
        data: dict[str, Any] = {name: env[name] for name in names
                                if isinstance(name, str) and env.get(name, "").strip()}
        token = _MAPPING_ONLY.set(True)
        try:
            return cls(**data)
        except ValidationError as err:
            first = err.errors()[0]
            why = first["msg"].removeprefix("Value error, ")
            raise ConfigError(f"bad environment variable {first['loc'][0]}: {why}", "fix or unset it") from None
        finally:
            _MAPPING_ONLY.reset(token)

    @property
    def config_file(self) -> Path:
        if self.config is not None:
            return self.config.expanduser()
        base = self.xdg_config_home or (self.home or Path.home()) / ".config"
        return base / "orkes-provision" / "config.toml"


class Profile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="", exclude=True)  # the [profiles.NAME] table's name, not a key in it
    server: str
    key_id: str


class Config(BaseModel):
    """The config file: profiles (server and key id; secrets are in the keyring) and defaults."""

    model_config = ConfigDict(extra="forbid")

    default_profile: str | None = None
    default_store: str | None = None
    # The longest lifetime 'provision token' mints (a duration: 1h, 15m); unset: one hour.
    max_token_ttl: str | None = None
    profiles: dict[str, Profile] = Field(default_factory=dict)


def config_path(env: Mapping[str, str] | None = None) -> Path:
    return Settings.from_env(os.environ if env is None else env).config_file


def load_config(path: Path | None = None) -> Config:
    """Read the config file; a missing file is an empty config, a broken one a ``ConfigError``."""
    path = path or config_path()
    try:
        raw = path.read_bytes() if path.is_dir() else trust.read_trusted(path)
    except FileNotFoundError:
        return Config()
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a config file",
                          "remove or rename the directory, or set ORKES_PROVISION_CONFIG to the file") from None
    except OSError as err:
        raise ConfigError(f"cannot read {path}: {err.strerror or err}", "check its permissions") from None
    if raw is None:
        return Config()
    data = parse_toml(raw, str(path))
    try:
        config = Config.model_validate(data)
    except ValidationError as err:
        raise validation_error(str(path), err, Config, _BROKEN_CONFIG_HINT) from None
    for name, profile in config.profiles.items():
        profile.name = name
    return config


def write_config(config: Config, path: Path | None = None) -> None:
    """Write the config file atomically (0600: it names key ids, which are not for everyone)."""
    path = path or config_path()
    try:
        trust.private_directory(path.parent)
        write_private_file(path, render_config(config).encode("utf-8"))
    except OSError as err:
        raise ConfigError(f"cannot write {path}: {err.strerror or err}",
                          "check the permissions of the directory or set ORKES_PROVISION_CONFIG") from None


def render_config(config: Config) -> str:
    lines = ["# orkes-provision configuration; secrets are in the keyring, not here."]
    for field in ("default_profile", "default_store", "max_token_ttl"):
        value = getattr(config, field)
        if value is not None:
            lines.append(f"{field} = {_toml_string(value)}")
    for name in sorted(config.profiles):
        profile = config.profiles[name]
        lines += ["", f"[profiles.{_toml_string(name)}]", f"server = {_toml_string(profile.server)}",
                  f"key_id = {_toml_string(profile.key_id)}"]
    return "\n".join(lines) + "\n"


def _toml_string(value: str) -> str:
    # A JSON string is a TOML basic string once DEL, which JSON leaves raw, is escaped too.
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")


def profile_keyring_user(name: str, server: str) -> str:
    return f"profile:{name}@{server}"


def _check_profile_name(name: str) -> None:
    if not _PROFILE_NAME.match(name):
        raise UsageError(f"bad profile name {name!r}",
                         "use letters, digits, '.', '_' and '-' (at most 64), starting with a letter or digit")


def save_profile(name: str, server: str, key_id: str, secret: SecretStr, *,
                 env: Mapping[str, str] | None = None) -> Profile:
    """Store a profile: the secret in the keyring, server and key id in the config file.

    ``server`` is normalised (its http policy is the caller's). The keyring is written first, so
    a config entry never points at a secret that is missing.
    """
    from orkes_provision.credentials.stores.keyring_store import keyring_failure, require_keyring

    _check_profile_name(name)
    server = normalize_server_url(server, insecure_http=True)
    key_id = key_id.strip()
    clean_secret = secret.get_secret_value().strip()
    if not key_id or not clean_secret:
        raise UsageError("the key id and the secret must not be empty", "copy them from the Orkes UI")
    path = config_path(env)
    config = load_config(path)
    old = config.profiles.get(name)
    try:
        backend = require_keyring()
        try:
            backend.set_password(PROFILE_KEYRING_SERVICE, profile_keyring_user(name, server), clean_secret)
        except Exception as err:
            raise keyring_failure(err, f"store the secret of profile {name!r}") from None
    except StoreError as err:
        # A profile's secret lives only in the keyring (login has no --store): say what works instead.
        raise StoreError(err.message, _NO_KEYRING_FOR_LOGIN_HINT) from None
    profile = Profile(name=name, server=server, key_id=key_id)
    config.profiles[name] = profile
    write_config(config, path)
    if old is not None and old.server != server:
        _forget_secret(name, old.server)
    return profile


def keyring_location(profile: Profile) -> str:
    """Where a profile's secret lives, for messages."""
    return f"keyring (service {PROFILE_KEYRING_SERVICE}, user {profile_keyring_user(profile.name, profile.server)})"


def list_profiles(env: Mapping[str, str] | None = None) -> list[Profile]:
    """The profiles of the config file, sorted by name (no secrets)."""
    config = load_config(config_path(env))
    return [config.profiles[name] for name in sorted(config.profiles)]


def delete_profile(name: str, env: Mapping[str, str] | None = None) -> None:
    """Remove a profile from the config file and its secret from the keyring."""
    path = config_path(env)
    config = load_config(path)
    profile = config.profiles.pop(name, None)
    if profile is None:
        known = ", ".join(sorted(config.profiles)) or "none"
        raise NotFound(f"no profile {name!r}", f"profiles: {known}")
    if config.default_profile == name:
        config.default_profile = None
    write_config(config, path)
    _forget_secret(name, profile.server)


def _forget_secret(name: str, server: str) -> None:
    from orkes_provision.credentials.stores.keyring_store import usable_keyring

    backend = usable_keyring()
    if backend is None:
        return
    try:
        if backend.get_password(PROFILE_KEYRING_SERVICE, profile_keyring_user(name, server)) is not None:
            backend.delete_password(PROFILE_KEYRING_SERVICE, profile_keyring_user(name, server))
    except Exception as err:  # a stale secret left behind is worth a log line, not a failure
        log.info("could not remove the keyring secret of profile %s: %s", name, type(err).__name__)


def sandbox_data_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where the local sandbox keeps its data (and ``admin.env``)."""
    # The sandbox package defines the place; importing it is cheap (its heavy parts load lazily).
    from orkes_provision.sandbox import data_dir_from

    return data_dir_from(os.environ if env is None else env)


def resolve_credentials(*, server: str | None, profile: str | None, insecure_http: bool = False,
                        env: Mapping[str, str] | None = None) -> Credentials:
    """Find the provisioning credentials, in the order documented at the top of this module.

    ``server`` and ``profile`` are the ``--server`` and ``--profile`` flags. Raises
    ``ConfigError`` saying exactly what to set when nothing supplies a key, and ``UsageError``
    for a server URL that is not one (or plain http to a remote host without ``insecure_http``).
    """
    env = os.environ if env is None else env
    settings = Settings.from_env(env)
    flag_server = normalize_server_url(server, insecure_http=insecure_http) if server else None
    if profile is not None:
        return _from_profile(profile, flag_server, settings, env, insecure_http, explicit=True)
    key = (settings.auth_key or "").strip()
    secret = settings.auth_secret.get_secret_value().strip() if settings.auth_secret else ""
    if key or secret:
        return _from_environment(key, secret, flag_server, settings, insecure_http)
    env_server = normalize_server_url(settings.server_url, insecure_http=insecure_http) if settings.server_url else None
    if settings.profile is not None:
        return _from_profile(settings.profile, flag_server, settings, env, insecure_http, explicit=True, from_env=True)
    config = load_config(settings.config_file)
    name = _profile_for(config, flag_server or env_server)
    return _from_profile(name, flag_server or env_server, settings, env, insecure_http, explicit=False, config=config)


def _from_environment(key: str, secret: str, flag_server: str | None, settings: Settings,
                      insecure_http: bool) -> Credentials:
    """The key in CONDUCTOR_AUTH_KEY/CONDUCTOR_AUTH_SECRET, for the server in CONDUCTOR_SERVER_URL (or --server)."""
    if not key or not secret:
        missing = "CONDUCTOR_AUTH_SECRET" if key else "CONDUCTOR_AUTH_KEY"
        present = "CONDUCTOR_AUTH_KEY" if key else "CONDUCTOR_AUTH_SECRET"
        raise ConfigError(f"{present} is set but {missing} is not", f"set {missing} too, or unset {present}")
    env_url = normalize_server_url(settings.server_url, insecure_http=insecure_http) if settings.server_url else None
    if flag_server and env_url and flag_server != env_url:
        # The key came with CONDUCTOR_SERVER_URL: it is that server's, never sent to another.
        raise ConfigError(f"CONDUCTOR_AUTH_KEY is for {env_url} (CONDUCTOR_SERVER_URL), not {flag_server}",
                          "drop --server to use it with its own server, or use a profile for the other one: "
                          f"provision login --profile NAME --server {flag_server}")
    url = flag_server or env_url
    if not url:
        raise ConfigError("CONDUCTOR_AUTH_KEY and CONDUCTOR_AUTH_SECRET are set but no server URL is",
                          "set CONDUCTOR_SERVER_URL=https://HOST/api or pass --server")
    log.info("credentials: key %s from CONDUCTOR_AUTH_KEY/CONDUCTOR_AUTH_SECRET", key)
    return Credentials(server=normalize_server_url(url, insecure_http=insecure_http), key_id=key,
                       secret=SecretStr(secret))


def _profile_for(config: Config, server: str | None) -> str:
    """The profile to use when none is named: one for ``server`` (the default profile first), else the default."""
    if server is not None:
        matching = sorted(n for n, p in config.profiles.items() if p.server == server)
        if config.default_profile in matching:
            return config.default_profile
        if matching:
            return matching[0]
    return config.default_profile or DEFAULT_PROFILE


def _from_profile(name: str, server: str | None, settings: Settings, env: Mapping[str, str], insecure_http: bool,
                  *, explicit: bool, config: Config | None = None, from_env: bool = False) -> Credentials:
    """The credentials of profile ``name``; ``from_env``: it was named by ORKES_PROVISION_PROFILE, not --profile."""
    config = config or load_config(settings.config_file)
    profile = config.profiles.get(name)
    # A profile the user did not name on this command line: say where it came from, and how to drop it.
    chosen = f"ORKES_PROVISION_PROFILE={name} selects profile {name!r}"
    if profile is None:
        if name == SANDBOX_PROFILE:
            return _sandbox_credentials(server, env, insecure_http, from_env=from_env)
        if explicit:
            known = ", ".join(sorted(config.profiles)) or "none yet"
            what = f"{chosen}, which is not in" if from_env else f"no profile {name!r} in"
            raise ConfigError(f"{what} {settings.config_file} (profiles: {known})",
                              f"run 'provision login --profile {name}', or use --profile sandbox"
                              + (", or unset ORKES_PROVISION_PROFILE" if from_env else ""))
        raise ConfigError("no credentials: CONDUCTOR_AUTH_KEY and CONDUCTOR_AUTH_SECRET are not set "
                          f"and {settings.config_file} has no profile {name!r}", _NO_CREDENTIALS_HINT)
    profile_server = normalize_server_url(profile.server, insecure_http=insecure_http)
    if server is not None and server != profile_server:
        if from_env:
            raise ConfigError(f"{chosen}, which is for {profile_server}, not {server} (--server)",
                              "unset ORKES_PROVISION_PROFILE to use --server, or drop --server")
        raise ConfigError(f"profile {name!r} is for {profile_server}, not {server}",
                          "drop --server/CONDUCTOR_SERVER_URL, or store a profile for that server: "
                          f"provision login --profile NAME --server {server}")
    secret = _profile_secret(name, profile.server)
    log.info("credentials: key %s of profile %s (secret from the keyring)", profile.key_id, name)
    return Credentials(server=profile_server, key_id=profile.key_id.strip(), secret=SecretStr(secret))


def _profile_secret(name: str, server: str) -> str:
    from orkes_provision.credentials.stores.keyring_store import keyring_failure, require_keyring

    try:
        backend = require_keyring()
        try:
            secret = backend.get_password(PROFILE_KEYRING_SERVICE, profile_keyring_user(name, server))
        except Exception as err:
            raise keyring_failure(err, f"read the secret of profile {name!r}") from None
    except StoreError as err:
        raise ConfigError(f"cannot read the secret of profile {name!r}: {err.message}",
                          "set CONDUCTOR_AUTH_KEY and CONDUCTOR_AUTH_SECRET instead, or unlock the keyring") from None
    if not secret or not secret.strip():
        raise ConfigError(f"the keyring has no secret for profile {name!r} ({server})",
                          f"run 'provision login --profile {name}' again")
    return secret.strip()


def _sandbox_credentials(server: str | None, env: Mapping[str, str], insecure_http: bool, *,
                         from_env: bool = False) -> Credentials:
    from orkes_provision.credentials.stores.envfile import check_read_values, parse_env

    path = sandbox_data_dir(env) / "admin.env"
    try:
        raw = trust.read_trusted(path)
        if raw is None:
            raise FileNotFoundError(path)
        values = parse_env(raw.decode("utf-8"))
        check_read_values(path, values)
    except FileNotFoundError:
        raise ConfigError(f"no sandbox credentials: {path} does not exist",
                          "start the sandbox first: 'provision sandbox --detach' (it writes admin.env on first start)"
                          ) from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read {path}: {err}", "check its permissions") from None
    url, key, secret = (values.get(name, "").strip() for name in
                        ("CONDUCTOR_SERVER_URL", "CONDUCTOR_AUTH_KEY", "CONDUCTOR_AUTH_SECRET"))
    if not (url and key and secret):
        raise ConfigError(f"{path} lacks CONDUCTOR_SERVER_URL, CONDUCTOR_AUTH_KEY or CONDUCTOR_AUTH_SECRET",
                          "stop the sandbox, remove its data directory and start it again")
    sandbox_server = normalize_server_url(url, insecure_http=insecure_http)
    if server is not None and server != sandbox_server:
        if from_env:
            raise ConfigError(f"ORKES_PROVISION_PROFILE=sandbox selects the local sandbox at {sandbox_server}, "
                              f"not {server} (--server)", "unset ORKES_PROVISION_PROFILE to use --server, "
                              "or drop --server")
        raise ConfigError(f"the sandbox runs at {sandbox_server}, not {server}", "drop --server with --profile sandbox")
    log.info("credentials: sandbox admin key %s from %s", key, path)
    return Credentials(server=sandbox_server, key_id=key, secret=SecretStr(secret))
