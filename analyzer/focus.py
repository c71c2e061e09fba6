"""FinOps FOCUS 1.2 export: the run's cost as FOCUS charge rows (CSV or Parquet).

One row per UTC day x SKU price (model, token class, and what decides its unit price: tier, context
tier, speed, geo, price period) x the logs' dimensions. Columns, types and fixed values are data
(focus.toml, citing the specification).

Every cost is exact and every row satisfies the spec's products: BilledCost = EffectiveCost =
ContractedCost = ContractedUnitPrice x PricingQuantity, and ListCost = ListUnitPrice x
PricingQuantity. That holds because the rows are built from the run's rate-key groups, whose per-unit
rates are columns (pipeline.Groups), and the unit prices are part of the row's key: two requests
priced at different rates are never one row. ListUnitPrice is the shipped (published) book's rate for
the same SKU price; ContractedUnitPrice the rate applied, with price overlays (negotiated rates,
discounts). A model only an overlay prices has no published price: its contracted rate is its list.
"""

from __future__ import annotations

import io
import tomllib
from dataclasses import dataclass
from decimal import Decimal
from importlib import resources

import polars as pl

from . import pipeline, pricebook, safe_text
from .errors import OptionError
from .pricing import RATE, banded, rate_frame
from .schema import COMPONENTS, MONEY
from .tagging import RATE_KEYS

_TYPES = {"Decimal": MONEY, "String": pl.String, "DateTime": pl.Datetime("us", "UTC"), "JSON": pl.String}
_PUBLISHED = "_pub_"


def spec() -> dict:
    with resources.files(__package__).joinpath("focus.toml").open("rb") as f:
        return tomllib.load(f)


def columns() -> dict[str, pl.DataType]:
    """Every column of the export, in order, with its Polars type (a Decimal's `scale` when given)."""
    return {c["name"]: pl.Decimal(38, c["scale"]) if "scale" in c else _TYPES[c["type"]] for c in spec()["column"]}


@dataclass
class Export:
    rows: pl.DataFrame  # columns(), typed (Decimal money, UTC datetimes)
    accounting: pipeline.Accounting
    book: pricebook.PriceBook
    notes: list[str]


def export(paths, opts: pipeline.Options | None = None, billing_account: str | None = None) -> Export:
    """Read and price the logs, and lay the cost out as FOCUS rows."""
    opts = opts or pipeline.Options()
    if opts.tz != "UTC":
        raise OptionError(f"--tz {opts.tz}: FOCUS dates are UTC (its Date/Time Format); leave --tz out")
    book = pricebook.load_price_book(opts.prices)
    shipped = pricebook.load_price_book(()) if opts.prices else book
    run_book, list_book = banded(book, shipped)
    groups = pipeline.analyze_groups(paths, ["day"], opts, run_book, all_dimensions=True)
    return Export(frame(groups, list_book, billing_account), groups.accounting, book, groups.notes)


def export_store(root: str, opts: pipeline.Options | None = None, billing_account: str | None = None) -> Export:
    """The FOCUS rows of a store's priced requests: the same columns and grain as from the logs, with
    the costs as stored (priced at ingest or by `reprice`); list prices from the shipped book."""
    from . import store

    opts = opts or pipeline.Options()
    if opts.tz != "UTC":
        raise OptionError(f"--tz {opts.tz}: FOCUS dates are UTC (its Date/Time Format); leave --tz out")
    shipped = pricebook.load_price_book(())
    groups = store.focus_groups(root, opts, shipped)
    return Export(frame(groups, shipped, billing_account), groups.accounting, groups.book, groups.notes)


def frame(groups: pipeline.Groups, list_book, billing_account: str | None = None) -> pl.DataFrame:
    """FOCUS rows from priced groups (keys: day and every dimension). `list_book`: the published
    book, banded like the run's, for ListUnitPrice."""
    data = spec()
    priced = groups.priced
    dims = [d for d in groups.dimensions if d in priced.columns]
    published = rate_frame(priced, list_book).select(
        *RATE_KEYS, *[pl.col(RATE + c.column).alias(_PUBLISHED + c.column) for c in COMPONENTS])
    priced = priced.join(published, on=list(RATE_KEYS), how="left", nulls_equal=True)
    # (rows from a store carry the book version each request was priced with: it stays per row)
    versions = ["price_book"] if "price_book" in priced.columns else []
    keys = ["day", "platform", "provider", "model", "service_tier", "context_tier", "discount_type", "inference_geo",
            "price_period", *dims, *versions]
    parts = []
    for c in COMPONENTS:
        parts.append(priced.filter(pl.col(c.column) > 0).select(
            *keys, pl.lit(c.rate).alias("_component"), pl.col(c.column).alias("_quantity"),
            pl.col(RATE + c.column).alias("_rate"),
            pl.coalesce(_PUBLISHED + c.column, RATE + c.column).alias("_list_rate"),
            pl.col("cost_" + c.rate).alias("_cost")))
    rows = pl.concat(parts) if parts else priced.clear()
    # The unit prices are keys: a row never mixes requests priced at different rates.
    rows = rows.group_by([*keys, "_component", "_rate", "_list_rate"], maintain_order=True).agg(
        pl.col("_quantity").sum(), pl.col("_cost").sum())
    rank = {c.rate: i for i, c in enumerate(COMPONENTS)}  # token classes in the price book's order
    rows = rows.sort(["day", "model", pl.col("_component").replace_strict(rank, return_dtype=pl.Int32), *keys[1:]],
                     nulls_last=True)
    comp = data["component"]
    per = {k: v["per"] for k, v in comp.items()}
    scale = pl.col("_component").replace_strict(per, return_dtype=pl.Int64).cast(pl.Decimal(38, 0))
    # Pricing quantity in the price list's unit (1,000,000 tokens): the count times 10^-6, exact.
    inverse = pl.col("_component").replace_strict({k: str(Decimal(1) / v) for k, v in per.items()},
                                                  return_dtype=pl.String).cast(MONEY)
    quantity = (pl.col("_quantity").cast(pl.Decimal(38, 0)) * inverse).cast(MONEY)
    unit = (pl.col("_rate") * scale).cast(MONEY)
    list_unit = (pl.col("_list_rate") * scale).cast(MONEY)
    cost = pl.col("_cost").cast(MONEY)
    list_cost = (pl.col("_quantity").cast(pl.Decimal(38, 0)) * pl.col("_list_rate")).cast(MONEY)
    start = pl.col("day").dt.replace_time_zone("UTC")
    month = start.dt.truncate("1mo")
    platforms = data["platform"]
    platform = pl.coalesce("platform", "provider")

    def by_platform(field_: str) -> pl.Expr:
        return platform.replace_strict({k: v[field_] for k, v in platforms.items()}, default=platform)

    meter = pl.col("_component").replace_strict({k: v["meter"] for k, v in comp.items()})
    details = pl.struct(
        pl.col("model").alias("x_ModelId"),
        *[pl.col("_component").replace_strict({k: v["details"].get(f) for k, v in comp.items()}, default=None,
                                              return_dtype=pl.String).alias(f)
          for f in ("x_TokenDirection", "x_TokenCacheAction", "x_CacheTtl")],
        pl.col("service_tier").alias("x_ServiceTier"), pl.col("context_tier").alias("x_ContextWindow"),
        pl.col("discount_type").alias("x_DiscountType"),
    ).struct.json_encode()
    workspace = pl.col("workspace") if "workspace" in dims else pl.lit(None, pl.String)
    tags = pl.struct(*[pl.col(d) for d in dims]).struct.json_encode() if dims else pl.lit(None, pl.String)
    region = pl.col("inference_geo").replace_strict(data["region"], default=None, return_dtype=pl.String)
    values = data["values"]
    out = rows.select(
        cost.alias("BilledCost"),
        (pl.lit(billing_account) if billing_account else platform).alias("BillingAccountId"),
        pl.lit(None, pl.String).alias("BillingAccountName"),
        pl.lit(values["BillingCurrency"]).alias("BillingCurrency"),
        month.dt.offset_by("1mo").alias("BillingPeriodEnd"), month.alias("BillingPeriodStart"),
        pl.lit(values["ChargeCategory"]).alias("ChargeCategory"), pl.lit(None, pl.String).alias("ChargeClass"),
        pl.format("{} {} ({})", "model", meter, "discount_type").alias("ChargeDescription"),
        pl.lit(values["ChargeFrequency"]).alias("ChargeFrequency"),
        start.dt.offset_by("1d").alias("ChargePeriodEnd"), start.alias("ChargePeriodStart"),
        pl.col("_quantity").alias("ConsumedQuantity"),
        pl.col("_component").replace_strict({k: v["consumed_unit"] for k, v in comp.items()}).alias("ConsumedUnit"),
        cost.alias("ContractedCost"), unit.alias("ContractedUnitPrice"), cost.alias("EffectiveCost"),
        by_platform("invoice_issuer").alias("InvoiceIssuerName"), list_cost.alias("ListCost"),
        list_unit.alias("ListUnitPrice"), pl.lit(values["PricingCategory"]).alias("PricingCategory"),
        quantity.alias("PricingQuantity"),
        pl.col("_component").replace_strict({k: v["pricing_unit"] for k, v in comp.items()}).alias("PricingUnit"),
        by_platform("provider").alias("ProviderName"),
        pl.col("provider").replace_strict(data["publisher"], default=pl.col("provider")).alias("PublisherName"),
        pl.when(region.is_not_null()).then(pl.col("inference_geo")).alias("RegionId"), region.alias("RegionName"),
        pl.lit(values["ServiceCategory"]).alias("ServiceCategory"), by_platform("service").alias("ServiceName"),
        pl.lit(values["ServiceSubcategory"]).alias("ServiceSubcategory"),
        pl.format("{}:{}", "model", "_component").alias("SkuId"), meter.alias("SkuMeter"),
        details.alias("SkuPriceDetails"),
        # (no price period or overlay in the id: FOCUS 1.2 keeps a SkuPriceId the same over time and contracts)
        pl.format("{}:{}:{}", "model", "_component", "discount_type").alias("SkuPriceId"),
        workspace.alias("SubAccountId"), workspace.alias("SubAccountName"), tags.alias("Tags"),
        pl.col("_component").alias("x_TokenClass"), pl.col("discount_type").alias("x_DiscountType"),
        pl.col("service_tier").alias("x_ServiceTier"), pl.col("context_tier").alias("x_ContextWindow"),
        pl.col("price_period").alias("x_PricePeriod"), (pl.col("price_book") if versions else pl.lit(groups.book.version)).alias("x_PriceBookVersion"),
    )
    return out.select([pl.col(c).cast(t) for c, t in columns().items()])


def shown(rows: pl.DataFrame, reveal: bool = False) -> pl.DataFrame:
    """Credentials masked in every text column (a workspace or tag holding a key), unless `reveal`.
    Tags are masked as text: a masked key is still a JSON string (the mask has no quote or backslash)."""
    return rows if reveal else safe_text.mask_frame(rows)


def render(result: Export, fmt: str, reveal: bool = False) -> str | bytes:
    """`csv` (decimals as exact text, dates `YYYY-MM-DDTHH:mm:ssZ`, cells neutralised against formulas)
    or `parquet` (Decimal and UTC timestamp columns)."""
    rows = shown(result.rows, reveal)
    if fmt == "parquet":
        buf = io.BytesIO()
        rows.write_parquet(buf)
        return buf.getvalue()
    text = rows.with_columns(
        *[pl.col(c).dt.strftime("%Y-%m-%dT%H:%M:%SZ") for c, t in rows.schema.items() if isinstance(t, pl.Datetime)])
    text = safe_text.csv_frame(text)
    return text.with_columns([pl.col(c).cast(pl.String) for c, t in text.schema.items()
                              if isinstance(t, pl.Decimal)]).write_csv()


def write(result: Export, output: str | None, reveal: bool = False) -> None:
    from .writers import write_output

    fmt = "parquet" if output and output.lower().endswith(".parquet") else "csv"
    write_output(render(result, fmt, reveal), output)
