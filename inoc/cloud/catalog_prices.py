"""Hourly prices of accelerator candidates from SkyPilot's own catalog (``sky.catalog``).

SkyPilot downloads its catalog (``~/.sky/catalogs/<version>/<cloud>/vms.csv``) at run time and refreshes
it every few hours; a catalog file written by hand is used as is. Each cloud is read on its own, so one
cloud whose catalog cannot be fetched (offline, say) is reported and skipped instead of failing the plan.
As SkyPilot's optimizer does (``optimize_target=COST`` with no runtime estimate), a launch lands on the
cheapest hourly offer among the candidates; ``cheapest`` picks that offer.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from inoc.cloud.accelerators import Candidate

#: Clouds whose catalogs are read unless told otherwise (``inoc plan --clouds``, or INOC_PLAN_CLOUDS for
#: the plan and the budget guard alike): list the clouds ``sky check`` enables for you.
DEFAULT_CLOUDS = ("aws", "gcp", "azure", "lambda", "runpod", "nebius")


def default_clouds() -> list[str]:
    env = [c.strip() for c in os.environ.get("INOC_PLAN_CLOUDS", "").split(",") if c.strip()]
    return env or list(DEFAULT_CLOUDS)


class PricingError(RuntimeError):
    """No catalog could be read, or no candidate has a price in any readable catalog."""


@dataclass(frozen=True)
class Offer:
    candidate: Candidate
    cloud: str
    instance_type: str
    region: str
    usd_per_hour: float
    spot: bool


@dataclass
class Prices:
    """The cheapest on-demand and spot offer of each candidate (by its ``str``), and what was skipped."""

    offers: dict[str, dict[bool, Offer]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def offer(self, candidate: Candidate, spot: bool) -> Offer | None:
        return self.offers.get(str(candidate), {}).get(spot)

    def cheapest(self, candidates: Sequence[Candidate], spot: bool) -> Offer | None:
        found = [o for c in candidates if (o := self.offer(c, spot)) is not None]
        return min(found, key=lambda o: o.usd_per_hour) if found else None


def _valid(price: float | None) -> bool:
    return price is not None and not (isinstance(price, float) and math.isnan(price)) and price > 0


def catalog_prices(candidates: Sequence[Candidate], clouds: Sequence[str] | None = None) -> Prices:
    """Read the catalog of each cloud and keep the cheapest offer per candidate, on-demand and spot."""
    try:
        from sky import catalog, sky_logging
    except ImportError as err:
        raise PricingError(f"the skypilot package is needed for catalog prices ({err}); see sky/README.md") from None
    prices = Prices()
    for cloud in clouds or default_clouds():
        try:
            # Silenced: SkyPilot's server-side status spinners would print raw <sky-payload> lines, and
            # a failed fetch is reported once, in the plan's "catalogs not read" line.
            with sky_logging.silent():
                listing = _list(catalog, cloud, candidates)
        except Exception as err:  # noqa: BLE001 — an unreadable catalog (offline, unknown cloud) is skipped
            prices.skipped[cloud] = f"{type(err).__name__}: {str(err).splitlines()[0][:160] if str(err) else ''}"
            continue
        for cand in candidates:
            for info in listing.get(cand.name, []):
                if float(info.accelerator_count) != float(cand.count):
                    continue
                for spot, price in ((False, info.price), (True, info.spot_price)):
                    if not _valid(price):
                        continue
                    best = prices.offers.setdefault(str(cand), {}).get(spot)
                    if best is None or price < best.usd_per_hour:
                        prices.offers[str(cand)][spot] = Offer(
                            cand, str(info.cloud), str(info.instance_type), str(info.region), float(price), spot
                        )
    if not prices.offers:
        detail = "; ".join(f"{c}: {why}" for c, why in prices.skipped.items()) or "no offers"
        raise PricingError(
            f"no catalog price for {', '.join(map(str, candidates))} ({detail}). SkyPilot downloads "
            "its catalog on first use: check the network, or run `sky show-gpus` once"
        )
    return prices


def _list(catalog, cloud: str, candidates: Sequence[Candidate]) -> dict:
    names = "|".join(re.escape(c.name) for c in candidates)
    return catalog.list_accelerators(
        gpus_only=True,
        name_filter=f"^(?:{names})$",
        clouds=cloud,
        case_sensitive=False,
        all_regions=False,
        require_price=True,
    )
