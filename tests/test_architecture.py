"""The README's Layout promises: floors that go one way, a Django-free wire, presets as data."""

import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command

from wire import presets
from wire.adapters import REGISTRY

ROOT = Path(__file__).resolve().parent.parent


def test_the_import_contracts_hold():
    linter = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(linter), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_the_wire_loads_without_django():
    modules = sorted(
        ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for path in (ROOT / "wire").rglob("*.py")
    )
    code = f"import sys; import {', '.join(modules)}; sys.exit(1 if 'django' in sys.modules else 0)"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr[-2000:]


def test_every_preset_names_a_registered_wire_format():
    assert {p.wire for p in presets.PRESETS.values()} <= set(REGISTRY)


@pytest.mark.django_db
def test_a_new_openai_compatible_preset_is_one_entry_and_needs_no_migration(monkeypatch):
    from keys.forms import CredentialCreateForm
    from keys.models import ProviderCredential

    # Migrations keep the choices as a reference to a callable, not as a list a new entry would change.
    _name, _path, _args, kwargs = ProviderCredential._meta.get_field("provider").deconstruct()
    assert callable(kwargs["choices"])

    entry = presets.Preset("newco", "NewCo", "openai", "https://api.newco.example/v1")
    monkeypatch.setitem(presets.PRESETS, "newco", entry)
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)  # exits non-zero on a pending migration
    form = CredentialCreateForm(data={"name": "n", "provider": "newco", "api_key": "sk-test"})
    assert "provider" not in form.errors
