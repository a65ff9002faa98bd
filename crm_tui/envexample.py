"""`.env.example`, written from the registry: every source's declared settings, then
crm-tui's own. `make env-example` rewrites the file; a test checks it is current."""

from __future__ import annotations

from crm_tui.config import CoreSettings
from crm_tui.sources.registry import CONNECTORS

HEADER = (
    "# crm-tui settings. Copy to .env (here, or in the config dir `crm-tui paths` prints).\n"
    "# Environment variables win over ./.env, which wins over the config dir's .env.\n"
    "# Generated from each source's declaration: `make env-example` writes it again.\n"
)


def render() -> str:
    blocks = []
    for cls in CONNECTORS.values():
        if cls.settings:
            blocks.append("\n".join(f"# {s.help}\n{s.env}={s.default or ''}" for s in cls.settings))
    own = []
    for name, info in CoreSettings.model_fields.items():
        default = "" if info.default is None or info.default_factory else info.default
        own.append(f"# {info.description}\n{name.upper()}={default}")
    blocks.append("\n".join(own))
    return HEADER + "\n" + "\n\n".join(blocks) + "\n"


if __name__ == "__main__":
    print(render(), end="")
