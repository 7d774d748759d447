"""What the fuzzer draws: catalog entries over everything the gallery covers, valid for Keras.

One draw is a catalog entry (the format of ``catalog/*.yaml``, without id and description): layer,
wrapper, units, features, timesteps, batch, every option, a mask (leading, trailing, scattered and
fully masked rows), initial states, weight/input/bias scales including saturating ones, stateful call
splits, and the numpy seed that draws the values (``entries.draw``, as the generator does). Hypothesis
shrinks an entry towards the first choice of everything: LSTM, one unit, one step, one feature, batch
one, Keras's defaults, no mask, seed 0, so a shrunk counterexample is the smallest configuration that
still fails.

Only what Keras accepts is drawn: no ``go_backwards`` under Bidirectional (Keras 3 refuses it), no
initial state on a stateful layer, every non-final layer of a stack returns sequences. relu and linear
get small weights and inputs (as in the gallery), where float32 and float64 stay within tolerance.

ConvLSTM1D and ConvLSTM2D (as ``catalog/conv_lstm.yaml``: ``spatial`` rows, or rows and columns, and
``features`` the channels) are drawn on their own, as the gallery has them: filters, kernel_size 1 to 3 per
axis, padding valid or same, strides 1 or 2 *or* dilation_rate 1 or 2 (Keras refuses strides > 1 together
with dilation_rate > 1), a spatial size at least the kernel's span (so "valid" leaves a position), channels
last (TensorFlow's CPU convolution has nothing else), no bias, go_backwards, return_sequences/return_state,
initial states, masks and the scales. Not drawn for them: Bidirectional or Stacked around them, stateful,
relu/linear, hard_sigmoid, dropout and zero_output_for_mask (no gallery fixture has them). Their own choices
are drawn after every other one, so the other choices keep their meaning (a seed draws other examples than
before ConvLSTM was added all the same: the layer is chosen among two more).
"""

from __future__ import annotations

from hypothesis import assume, strategies as st

SINGLE = ("LSTM", "GRU", "SimpleRNN")
CONV = ("ConvLSTM1D", "ConvLSTM2D")
LAYERS = (*SINGLE, "Bidirectional", "Stacked", *CONV)
MERGE_MODES = ("concat", "sum", "mul", "ave", None)
MASK_ROWS = ("kept", "trailing", "leading", "scattered", "masked")
MAX = {"units": 8, "features": 5, "timesteps": 12, "batch": 4, "calls": 4, "stacked": 3}
CONV_MAX = {"filters": 4, "timesteps": 6, "kernel": 3, "extra": 3}  # extra: spatial size past the kernel's span

# Tags a fixture can carry, as in the gallery. --tag TAG restricts the search to entries with TAG: the
# option behind it is always drawn on, and the layers that cannot carry it are left out.
TAG_LAYERS = {
    "stateful": SINGLE, "stateful-reset": SINGLE, "go_backwards": (*SINGLE, *CONV),
    "return_state": (*SINGLE, "Bidirectional", *CONV),
    "bidirectional": ("Bidirectional",), "stacked": ("Stacked",),
    **{f"merge-{mode or 'none'}": ("Bidirectional",) for mode in MERGE_MODES},
    **{tag: CONV for tag in ("conv_lstm", "padding-valid", "padding-same", "strides", "dilation", "even-kernel")},
}
# What a ConvLSTM layer can carry (the rest is the recurrent layers' alone); two pairs exclude each other.
CONV_TAGS = {"fuzz", "return_sequences", "return_state", "go_backwards", "no_bias", "initial_state", "mask",
             "mask-leading", "mask-trailing", "mask-middle", "mask-full-row", "saturation", "bias",
             "conv_lstm", "padding-valid", "padding-same", "strides", "dilation", "even-kernel"}
EXCLUSIVE = ({"padding-valid", "padding-same"}, {"strides", "dilation"})
KIND_TAGS = {"hard_sigmoid": ("LSTM", "GRU"), "keras-version": ("LSTM", "GRU"),
             "reset_after": ("GRU",), "reset_before": ("GRU",)}
TAGS = sorted({"fuzz", "return_sequences", "return_state", "go_backwards", "no_bias", "initial_state", "mask",
               "mask-leading", "mask-trailing", "mask-middle", "mask-full-row", "zero_output_for_mask",
               "activation", "dropout", "saturation", "bias", "stateful-reset", *TAG_LAYERS, *KIND_TAGS})


def kinds_for(tags) -> tuple[str, ...]:
    """The recurrent layer classes an entry with these tags may contain."""
    kinds = set(SINGLE)
    for tag in tags:
        kinds &= set(KIND_TAGS.get(tag, SINGLE))
    return tuple(k for k in SINGLE if k in kinds)


def layers_for(layers, tags) -> tuple[str, ...]:
    """The fixture layers to draw from: those asked for that can carry every tag asked for."""
    kinds, tags = kinds_for(tags), set(tags)
    if any(pair <= tags for pair in EXCLUSIVE):
        return ()
    chosen = [layer for layer in layers if all(layer in TAG_LAYERS.get(tag, LAYERS) for tag in tags)
              and (layer not in CONV or tags <= CONV_TAGS)]
    return tuple(layer for layer in chosen if layer not in SINGLE or layer in kinds) if kinds else ()


def _rows_tags(mask) -> set:
    tags = set()
    for row in mask:
        if not any(row):
            tags.add("mask-full-row")
            continue
        first, last = row.index(1), len(row) - 1 - row[::-1].index(1)
        if first > 0:
            tags.add("mask-leading")
        if last < len(row) - 1:
            tags.add("mask-trailing")
        if not all(row[first:last + 1]):
            tags.add("mask-middle")
    return tags


def _parts(entry) -> list[tuple[str, dict]]:
    """(layer class, config) of every recurrent layer in the entry."""
    if entry["layer"] == "Stacked":
        return [(sub["layer"], sub["config"]) for sub in entry["layers"]]
    return [(entry.get("wrapped", entry["layer"]), entry["config"])]


def tags_of(entry: dict) -> list[str]:
    """The gallery's tags for what the entry exercises (plus ``fuzz``)."""
    tags = {"fuzz"}
    layer, parts = entry["layer"], _parts(entry)
    if layer == "Bidirectional":
        tags |= {"bidirectional", f"merge-{entry['merge_mode'] or 'none'}"}
    if layer == "Stacked":
        tags.add("stacked")
    if "calls" in entry:
        tags.add("stateful")
        if entry["calls"].get("reset_before"):
            tags.add("stateful-reset")
    if parts[-1][1].get("return_sequences"):
        tags.add("return_sequences")
    for kind, config in parts:
        tags |= {key for key in ("return_state", "go_backwards", "zero_output_for_mask", "dropout") if config.get(key)}
        if config.get("use_bias") is False:
            tags.add("no_bias")
        if kind == "GRU":
            tags.add("reset_after" if config.get("reset_after", True) else "reset_before")
        if config.get("activation", "tanh") != "tanh":
            tags.add("activation")
        if config.get("recurrent_activation") == "hard_sigmoid":
            tags |= {"hard_sigmoid", "keras-version"}
    if entry.get("initial_state"):
        tags.add("initial_state")
    if "mask" in entry:
        tags |= {"mask", *_rows_tags(entry["mask"])}
    if entry.get("input_scale", 1.0) >= 8 or entry.get("weight_scale", 0.5) >= 4:
        tags.add("saturation")
    if entry.get("bias_scale", 0.5) >= 2:
        tags.add("bias")
    if layer in CONV:
        config = entry["config"]
        tags |= {"conv_lstm", f"padding-{config.get('padding', 'valid')}"}
        if max(config.get("strides", [1])) > 1:
            tags.add("strides")
        if max(config.get("dilation_rate", [1])) > 1:
            tags.add("dilation")
        if any(k % 2 == 0 for k in config["kernel_size"]):
            tags.add("even-kernel")
    return sorted(tags)


def describe(entry: dict) -> str:
    """One line saying what the entry is, e.g. ``LSTM(units=2, go_backwards=True); batch 1, 3 steps, 2 features``."""
    def call(kind, config):
        options = ", ".join(f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}" for k, v in config.items())
        return f"{kind}({options})"
    if entry["layer"] == "Bidirectional":
        merge = entry["merge_mode"]
        head = f"Bidirectional({call(entry['wrapped'], entry['config'])}, merge_mode={merge!r})"
    elif entry["layer"] == "Stacked":
        head = "Stacked[" + ", ".join(call(sub["layer"], sub["config"]) for sub in entry["layers"]) + "]"
    else:
        head = call(entry["layer"], entry["config"])
    n = lambda count, word: f"{count} {word}{'' if count == 1 else 's'}"  # noqa: E731
    parts = [f"batch {entry['batch']}", n(entry["timesteps"], "step"), n(entry["features"], "feature")]
    if "spatial" in entry:
        spatial = entry["spatial"]
        parts[-1:] = [n(spatial[0], "row") if len(spatial) == 1 else "x".join(map(str, spatial)) + " frames",
                      n(entry["features"], "channel")]
    if "calls" in entry:
        calls = entry["calls"]
        parts.append(f"stateful calls of {calls['steps']} steps" +
                     (f", reset before call(s) {calls['reset_before']}" if calls.get("reset_before") else ""))
    if "mask" in entry:
        parts.append(f"mask {entry['mask']}")
    if entry.get("initial_state"):
        parts.append("initial state")
    if entry.get("hard_sigmoid") == "keras2":
        parts.append("hard_sigmoid as Keras 2 computes it")
    scales = [f"{key.replace('_', ' ')} {entry[key]:g}" for key in ("weight_scale", "bias_scale", "input_scale")
              if key in entry]
    parts += scales
    return f"{head}; " + ", ".join(parts) + f"; values drawn with seed {entry['seed']}"


@st.composite
def entries(draw, layers=LAYERS, tags=frozenset()):
    """Catalog entries (no id, description or tags) whose layer is in ``layers`` and carrying every tag in ``tags``.

    Every choice is drawn, in the same order, whatever the layer (unused ones are ignored), so when
    Hypothesis shrinks the layer (Bidirectional(GRU) to GRU, say) the other choices keep their meaning.
    """
    tags = frozenset(tags)
    flag = lambda tag: True if tag in tags else draw(st.booleans())  # noqa: E731
    rare = lambda tag: True if tag in tags else draw(st.integers(0, 3)) == 3  # noqa: E731 - one in four, shrinks to off
    kinds = kinds_for(tags)
    layer = draw(st.sampled_from(layers_for(layers, tags)))
    inner = draw(st.sampled_from(kinds))            # Bidirectional's wrapped layer, a stack's first layer
    merge_mode = draw(st.sampled_from(MERGE_MODES))
    depth = draw(st.integers(2, MAX["stacked"]))
    stateful = flag("stateful") and layer in SINGLE
    cuts = draw(st.lists(st.integers(1, MAX["timesteps"] - 1), min_size=1, max_size=MAX["calls"] - 1,
                         unique=True))                                 # where a stateful layer's calls start
    resets = [draw(st.integers(0, 3)) == 3 for _ in range(MAX["calls"] - 1)]  # reset_state() before call k + 1
    steps = draw(st.integers(2 if stateful else 1, MAX["timesteps"]))  # stateful: two calls at least
    entry = {"layer": layer, "batch": draw(st.integers(1, MAX["batch"])), "timesteps": steps,
             "features": draw(st.integers(1, MAX["features"]))}
    other_activation = "saturation" not in tags and flag("activation") and layer not in CONV  # relu or linear
    dropout = rare("dropout")

    def choices() -> dict:
        """One layer's choices; ``layer_config`` reads those that apply to where the layer is."""
        return {"units": draw(st.integers(1, MAX["units"])), "activation": draw(st.sampled_from(("relu", "linear"))),
                "hard_sigmoid": "hard_sigmoid" in tags or "keras-version" in tags or draw(st.booleans()),
                "no_bias": rare("no_bias"),
                "reset_before": "reset_before" in tags or ("reset_after" not in tags and draw(st.booleans())),
                **{key: flag(key) for key in ("return_sequences", "return_state", "go_backwards")},
                "zero_output_for_mask": rare("zero_output_for_mask")}

    def layer_config(kind, drawn, *, last=True, backwards=True, zero_output=True):
        config = {"units": drawn["units"]}
        if other_activation:
            config["activation"] = drawn["activation"]
        if kind != "SimpleRNN" and drawn["hard_sigmoid"]:
            config["recurrent_activation"] = "hard_sigmoid"
        if drawn["no_bias"]:
            config["use_bias"] = False
        if kind == "GRU" and drawn["reset_before"]:
            config["reset_after"] = False
        if not last or drawn["return_sequences"]:
            config["return_sequences"] = True
        if last and layer != "Stacked" and drawn["return_state"]:
            config["return_state"] = True
        if backwards and drawn["go_backwards"]:
            config["go_backwards"] = True
        if zero_output and drawn["zero_output_for_mask"]:
            config["zero_output_for_mask"] = True
        if dropout:
            config.update(dropout=0.5, recurrent_dropout=0.5)
        return config

    drawn = [choices() for _ in range(MAX["stacked"])]          # a stack's layers; the others use the first
    kinds_below = [draw(st.sampled_from(kinds)) for _ in range(MAX["stacked"] - 1)]
    if layer == "Bidirectional":
        entry.update(wrapped=inner, merge_mode=merge_mode,
                     config=layer_config(inner, drawn[0], backwards=False, zero_output=False))
    elif layer == "Stacked":
        stack = [inner, *kinds_below][:depth]
        entry["layers"] = [{"layer": kind, "config": layer_config(kind, drawn[k], last=k == depth - 1, backwards=False)}
                           for k, kind in enumerate(stack)]
    elif layer in CONV:
        entry["config"] = {"filters": min(drawn[0]["units"], CONV_MAX["filters"])}  # the rest at the end
        if drawn[0]["no_bias"]:
            entry["config"]["use_bias"] = False
        entry["config"].update({key: True for key in ("return_sequences", "return_state", "go_backwards")
                                if drawn[0][key]})
        entry["timesteps"] = steps = min(steps, CONV_MAX["timesteps"])
    else:
        entry["config"] = layer_config(layer, drawn[0])
    configs = [c for _, c in _parts(entry)]
    if stateful:
        entry["config"]["stateful"] = True
        edges = [0, *sorted({1 + (c - 1) % (steps - 1) for c in cuts}), steps]
        reset_before = [k for k in range(1, len(edges) - 1) if resets[k - 1]]
        if "stateful-reset" in tags and not reset_before:
            reset_before = [len(edges) - 2]
        entry["calls"] = {"steps": [b - a for a, b in zip(edges, edges[1:])], "reset_before": reset_before}

    masked = tags & {"mask", "zero_output_for_mask", "mask-leading", "mask-trailing", "mask-middle", "mask-full-row"}
    if masked or draw(st.booleans()):
        entry["mask"] = [_mask_row(draw, steps) for _ in range(entry["batch"])]
    else:
        for config in configs:
            config.pop("zero_output_for_mask", None)  # no effect without a mask: not drawn
    if flag("initial_state") and not stateful:
        entry["initial_state"] = True
    if draw(st.booleans()) and any(c.get("recurrent_activation") == "hard_sigmoid" for c in configs):
        entry["hard_sigmoid"] = "keras2"

    # scales: saturating ones only where every activation saturates (relu/linear would grow past float32's reach)
    saturation, weight_scale = flag("saturation"), draw(st.sampled_from((0.5, 1.0, 2.0, 4.0)))
    input_scale = draw(st.sampled_from((1.0, 3.0)))
    if other_activation:
        entry["weight_scale"] = 0.3
    elif saturation:
        entry.update(weight_scale=max(weight_scale, 1.0), input_scale=8.0)
    else:
        entry.update(weight_scale=min(weight_scale, 1.0), input_scale=input_scale)
    if flag("bias") and any(c.get("use_bias", True) for c in configs):
        entry["bias_scale"] = 2.0
    entry["seed"] = draw(st.integers(0, 2**32 - 1))
    conv = _conv_choices(draw, tags)                    # drawn last, whatever the layer: the others' draws stay
    if layer in CONV:
        rank = int(layer[-2])
        config = entry["config"]
        options = {"kernel_size": conv["kernel"][:rank]}
        if conv["strides"][:rank] != [1] * rank:
            options["strides"] = conv["strides"][:rank]
        if conv["padding"] == "same":
            options["padding"] = "same"
        if conv["dilation"][:rank] != [1] * rank:
            options["dilation_rate"] = conv["dilation"][:rank]
        entry["config"] = {"filters": config.pop("filters"), **options, **config}
        entry["spatial"] = [(k - 1) * d + 1 + e  # the kernel's span and more: "valid" leaves a position
                            for k, d, e in zip(conv["kernel"], conv["dilation"], conv["extra"][:rank])]
    for key, default in (("weight_scale", 0.5), ("input_scale", 1.0)):  # the catalog's defaults stay implicit
        if entry.get(key) == default:
            del entry[key]
    assume(tags <= set(tags_of(entry)))  # the mask kinds, which a flag cannot force
    return entry


def _conv_choices(draw, tags) -> dict:
    """A ConvLSTM layer's own choices, for two axes (ConvLSTM1D reads the first): kernel sizes, strides or
    dilation (Keras refuses both above 1), padding, and the spatial size past the kernel's span."""
    kernel = [draw(st.integers(1, CONV_MAX["kernel"])) for _ in range(2)]
    steps = [draw(st.integers(1, 2)) for _ in range(2)]
    dilate = "dilation" in tags or ("strides" not in tags and draw(st.booleans()))
    padding = ("same" if "padding-same" in tags else "valid" if "padding-valid" in tags
               else draw(st.sampled_from(("valid", "same"))))
    extra = [draw(st.integers(0, CONV_MAX["extra"])) for _ in range(2)]
    if ("strides" in tags or "dilation" in tags) and steps[0] == 1:
        steps[0] = 2
    if "even-kernel" in tags and kernel[0] % 2:
        kernel[0] = 2
    ones = [1, 1]
    return {"kernel": kernel, "strides": ones if dilate else steps, "dilation": steps if dilate else ones,
            "padding": padding, "extra": extra}


def _mask_row(draw, steps: int) -> list[int]:
    """One row of the mask (1 = step processed): all kept, trailing/leading padding, scattered, or fully masked."""
    kind = draw(st.sampled_from(MASK_ROWS))
    if kind == "kept":
        return [1] * steps
    if kind == "masked":
        return [0] * steps
    if kind == "scattered":
        return [int(not draw(st.booleans())) for _ in range(steps)]
    k = draw(st.integers(1, steps))
    return [1] * (steps - k) + [0] * k if kind == "trailing" else [0] * k + [1] * (steps - k)
