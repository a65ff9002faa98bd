"""Every simulated CRM, in the order the demo starts them. Adding one: its module in
`demo/` defines a `Simulator`, and one line here."""

from __future__ import annotations

from crm_tui.demo.followupboss import FOLLOWUPBOSS
from crm_tui.demo.hubspot import HUBSPOT
from crm_tui.demo.lofty import LOFTY
from crm_tui.demo.pipedrive import PIPEDRIVE
from crm_tui.demo.servers import BRIVITY, TOPPRODUCER, Simulator

SIMULATORS: tuple[Simulator, ...] = (
    BRIVITY,
    FOLLOWUPBOSS,
    TOPPRODUCER,
    HUBSPOT,
    PIPEDRIVE,
    LOFTY,
)
