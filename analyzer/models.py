"""Model-id resolution: any logged model string -> the price book's canonical model id.

Normalisation is mechanical and documented (case, whitespace, Claude Code's `[1m]` marker, Bedrock
ARNs, LiteLLM `provider/` routes, inference-profile prefixes, the `anthropic.` provider prefix, `-vN:M` version suffixes, Vertex
`publishers/.../models/` paths and `@YYYYMMDD` snapshots, OpenAI `-YYYY-MM-DD` snapshots of a
model the book lists undated); after it, the lookup is an exact match on
ids, aliases and platform ids. The id may also say the endpoint: a Bedrock geography profile
(`us.`, `eu.`, ...), a bare Bedrock id or foundation-model ARN (an in-region call) and a Vertex path
in a region are regional; a `global.` profile and Vertex's `locations/global` are global. There is no fuzzy matching: an id that does not resolve is unpriced,
and the report suggests the nearest known id for a human to confirm.
"""

from __future__ import annotations

import difflib
import re

from .pricebook import PriceBook

_ARN = re.compile(r"^arn:aws[\w-]*:bedrock:[^:]*:[^:]*:(?P<kind>[\w-]+)/(?P<rest>.+)$")
# Bedrock cross-region inference profiles: geography prefixes are regional endpoints, global. is not.
_PROFILE = re.compile(r"^(?P<geo>us-gov|us|eu|apac|jp|au|ca|global)\.(?=[a-z])")
_VERSION = re.compile(r"-v\d+(:\d+)?$")
_VERTEX_PATH = re.compile(r"^.*?/models/")
# A Vertex endpoint path names its location: `global` is the global endpoint, any region is regional.
_VERTEX_LOCATION = re.compile(r"(?:^|/)locations/(?P<loc>[^/]+)/")
# A Bedrock model id with no profile prefix (anthropic.claude-...-v1:0) is an in-region call: a
# regional endpoint, like a geography profile (only `global.` profiles are global).
_BEDROCK_ID = re.compile(r"^anthropic\.(?=[a-z])")
_SNAPSHOT = re.compile(r"@(\d{8})$")
# LiteLLM names a model `<provider>/<model id>` (anthropic/claude-3-5-sonnet-20241022,
# bedrock/converse/us.anthropic.claude-...): the provider route, then the provider's own id. Only the
# providers that serve models the book prices, so an unrelated `x/y` id stays unknown.
_LITELLM_ROUTE = re.compile(r"^(?:anthropic|bedrock|bedrock_converse|vertex_ai|vertex_ai_beta|openai|azure|azure_ai|"
                            r"text-completion-openai)/(?:(?:converse|invoke)/)?(?=[a-z0-9])")
# OpenRouter names a model `<vendor>/<slug>`; LiteLLM routes to it as `openrouter/<vendor>/<slug>`. The
# route is stripped here, the vendor by _LITELLM_ROUTE. `:beta` (self-moderated) and `:thinking` are
# OpenRouter variants billed at the model's own price; other variants (`:free`, `:extended`) are priced
# differently and stay unknown.
_OPENROUTER_ROUTE = re.compile(r"^openrouter/(?=[a-z0-9])")
_OPENROUTER_VARIANT = re.compile(r":(?:beta|thinking)$")
# OpenRouter writes Claude versions with a dot (claude-sonnet-4.5, claude-3.5-sonnet); Anthropic's ids
# use a dash. Tried only after the dotted id failed, so claude-2.1 and claude-instant-1.2 stay themselves.
_DOTTED_VERSION = re.compile(r"(?<=\d)\.(?=\d)")
# OpenAI responses name the dated snapshot that served them (gpt-5.4-2026-03-05); its price is the
# model's, which the book lists under the undated id. (Claude ids date without dashes: -20250929.)
_OPENAI_SNAPSHOT = re.compile(r"-\d{4}-\d{2}-\d{2}$")


def parse_model_id(raw: str) -> tuple[str, str | None, str | None]:
    """(lookup key, endpoint scope implied by the id or None, reason it cannot resolve or None)."""
    s, scope, problem = _versioned_key(raw)
    return (s if problem else _VERSION.sub("", s)), scope, problem


def _versioned_key(raw: str) -> tuple[str, str | None, str | None]:
    """parse_model_id's key before the `-vN:M` suffix is stripped: Bedrock names Claude Instant and
    Claude 2 by that suffix alone (anthropic.claude-v2:1), which the book lists as platform ids."""
    s = raw.strip().lower()
    s = s.removesuffix("[1m]")
    s = _OPENROUTER_VARIANT.sub("", _OPENROUTER_ROUTE.sub("", s))
    s = _LITELLM_ROUTE.sub("", s)
    scope = None
    m = _ARN.match(s)
    if m:
        if m.group("kind") in ("application-inference-profile", "provisioned-model", "custom-model"):
            return s, None, f"{m.group('kind')} ARN does not name a model (look it up in AWS)"
        s = m.group("rest")
    loc = _VERTEX_LOCATION.search(s)
    if loc:
        scope = "global" if loc.group("loc") == "global" else "regional"
    s = _VERTEX_PATH.sub("", s).split(":rawpredict")[0].split(":streamrawpredict")[0]
    m = _PROFILE.match(s)
    if m:
        scope = "global" if m.group("geo") == "global" else "regional"
        s = s[m.end():]
    elif _BEDROCK_ID.match(s):
        scope = "regional"
    s = s.removeprefix("anthropic.")
    return s, scope, None


class Resolver:
    """Lookup table of every id, alias and platform id in a price book."""

    def __init__(self, book: PriceBook):
        self.book = book
        self.table: dict[str, str] = {}
        for m in book.models.values():
            for key in (m.id, *m.aliases, *m.platform_ids):
                self.table[key.strip().lower()] = m.id

    def resolve(self, raw: str) -> tuple[str | None, str | None, str | None]:
        """(canonical id or None, endpoint scope implied by the id, why it did not resolve)."""
        # A router slug the book lists whole (platform_ids: "anthropic/claude-3.5-sonnet"), before
        # parse_model_id() strips its vendor.
        routed = _OPENROUTER_VARIANT.sub("", _OPENROUTER_ROUTE.sub("", raw.strip().lower()))
        if routed in self.table:
            return self.table[routed], None, None
        key, scope, problem = parse_model_id(raw)
        if problem:
            return None, scope, problem
        found = self.table.get(key)
        if found is None and _SNAPSHOT.search(key):
            found = self.table.get(_SNAPSHOT.sub(r"-\1", key))  # claude-x@20250101 -> claude-x-20250101
        if found is None and _OPENAI_SNAPSHOT.search(key):
            found = self.table.get(_OPENAI_SNAPSHOT.sub("", key))  # gpt-5.4-2026-03-05 -> gpt-5.4
        if found is None and key.startswith("claude-") and _DOTTED_VERSION.search(key):
            found = self.table.get(_DOTTED_VERSION.sub("-", key))  # claude-sonnet-4.5 -> claude-sonnet-4-5
        if found is None:
            found = self.table.get(_versioned_key(raw)[0])  # claude-v2:1 (Bedrock's Claude 2.1)
        if found is None:
            return None, scope, "unknown model"
        return found, scope, None

    def suggest(self, raw: str) -> str | None:
        """The nearest known id for a human to confirm, from the same provider and family only.

        A suggestion across families misleads (gpt-4.1-mini is not gpt-6.1-sol, claude-4-opus is not
        claude-3-opus), so a candidate must (1) belong to the provider the id's prefix names, (2) carry
        the id's version numbers as its leading ones (claude-4-opus: 4 -> claude-opus-4...), and (3) if the
        id names a line (opus, mini, nova...), have a word close to it (a typo like sonett still counts).
        No candidate: no suggestion.
        """
        key = parse_model_id(raw)[0]
        words, nums = _name_parts(key)
        provider = _provider_of(key)
        pool = []
        for cand, mid in self.table.items():
            model = self.book.models[mid]
            if provider is not None and model.provider != provider:
                continue
            cwords, cnums = _name_parts(parse_model_id(cand)[0])
            if cnums[:len(nums)] != nums:
                continue
            if words and not all(difflib.get_close_matches(w, cwords, n=1, cutoff=0.75) for w in words):
                continue
            pool.append(cand)
        close = difflib.get_close_matches(key, pool, n=1, cutoff=0.6)
        return self.table[close[0]] if close else None


# Words that name a provider or a form, not a model line.
_GENERIC_WORDS = {"claude", "gpt", "anthropic", "openai", "latest", "preview", "v", "chat", "model"}


def _name_parts(key: str) -> tuple[list[str], list[str]]:
    """(line words, version numbers) of an id; dates and snapshot numbers (4+ digits) are not versions."""
    parts = re.findall(r"[a-z]+|\d+", key.split("@")[0])
    words = [p for p in parts if p.isalpha() and p not in _GENERIC_WORDS]
    nums = [p for p in parts if p.isdigit() and len(p) < 4]
    return words, nums


def _provider_of(key: str) -> str | None:
    """The provider an id's own prefix names (claude -> anthropic, gpt/o-series -> openai), else None."""
    if key.startswith("claude"):
        return "anthropic"
    if key.startswith(("gpt-", "chatgpt")) or re.match(r"^o\d", key):
        return "openai"
    return None
