"""Options that take several values after one flag, as Walrus's (clap's `num_args = 1..`).

Click gives an option one value per flag; Walrus's CLI takes `--blobs A B C` and
`--object-ids X Y`. `MultiValueCommand` rewrites such arguments to one flag per value before
click parses them (`spread_multi_values`), so both spellings work.
"""

from __future__ import annotations

from collections.abc import Collection

import click

__all__ = ["MultiValueCommand", "spread_multi_values"]

#: Options that, like Walrus's `num_args = 0..`, take every value up to the next option.
_MULTI_VALUE_OPTIONS = frozenset(
    {"--blobs", "--paths", "--identifiers", "--identifier"}
    | {"--quilt-patch-ids", "--quilt-patch-id", "--patch-ids"}
    | {"--object-ids", "--node-ids", "--node-urls", "--keys"}
)
#: Options whose values may start with "-" (patch IDs are URL-safe base64, as Walrus's
#: `allow_hyphen_values`): a value ends only at an option the command knows, or `--`.
_HYPHEN_VALUE_OPTIONS = frozenset({"--quilt-patch-ids", "--quilt-patch-id", "--patch-ids"})


def spread_multi_values(args: list[str], known_options: Collection[str] = ()) -> list[str]:
    """`--blobs A B --json` -> `--blobs A --blobs B --json`: one flag per value, for click.

    After an option of `_HYPHEN_VALUE_OPTIONS`, an argument starting with `-` is a value unless
    it names one of `known_options` (the command's own).
    """
    out: list[str] = []
    option: str | None = None
    fresh = False  # the option was just written, so the next value needs no copy of it
    for position, arg in enumerate(args):
        if arg == "--":
            return out + args[position:]
        looks_like_option = arg.startswith("-") and len(arg) > 1
        if looks_like_option and option in _HYPHEN_VALUE_OPTIONS:
            looks_like_option = arg.split("=", 1)[0] in known_options
        if looks_like_option:
            option = arg if arg in _MULTI_VALUE_OPTIONS else None
            fresh = option is not None
            out.append(arg)
        elif option is not None and not fresh:
            out += [option, arg]
        else:
            fresh = False
            out.append(arg)
    return out


class MultiValueCommand(click.Command):
    """A command whose options of `_MULTI_VALUE_OPTIONS` take several values after one flag."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        known = {name for param in self.params for name in (*param.opts, *param.secondary_opts)}
        return super().parse_args(ctx, spread_multi_values(args, known))
