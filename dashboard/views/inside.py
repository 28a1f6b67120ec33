"""Inside the model: the layers, C1's filters epoch by epoch (live while training), and one image's feature maps."""

import numpy as np
import pandas as pd
import streamlit as st

from core import figures_audit
from dashboard import common, explain, explain_loaders, figures_network, live, loaders, widgets
from dashboard.audit_run import AuditRun, open_audit_run
from dashboard.figure_cache import figure

FILTER_EPOCH = "inside_filter_epoch"
INTERACTIVE = "inside_interactive"
ANIMATION = "inside_animation"
MAPS_EPOCH = "inside_maps_epoch"
LIVE_SECONDS = 2
MAP_LAYERS = (  # (layer, title, columns in the grid, pixel height of one row)
    ("c1_conv", "C1: 6 feature maps of 28×28", 6, 170),
    ("s2_pool", "S2: 6 maps of 14×14", 6, 170),
    ("c3_conv", "C3: 16 maps of 10×10", 8, 120),
    ("s4_pool", "S4: 16 maps of 5×5", 8, 120),
)
DENSE_LAYERS = (("c5_dense", "C5: 120 units"), ("f6_dense", "F6: 84 units"))


@st.cache_resource(max_entries=4, show_spinner=False)
def architecture(config_json: str):
    """An untrained model built from the run's config, to show the layers of a run that has no saved model yet."""
    from core.config import TrainConfig
    from core.model import build_model

    return build_model(TrainConfig.from_json(config_json))


def layers_section(info, model) -> None:
    from core import (
        model as lenet,  # here, not at the top: it loads TensorFlow (see loaders.analysis)
    )

    st.subheader("Layers")
    shown = model if model is not None else architecture(info.config.to_json())
    if model is None:
        st.caption("No saved model yet, so these layers are built from the run's config.")
    rows = lenet.summary_rows(shown)
    total = sum(row["params"] for row in rows)
    left, right = st.columns([3, 1])
    table = pd.DataFrame(rows).set_index("name").rename_axis("Layer")
    left.table(table.rename(columns={"type": "Type", "output_shape": "Output shape", "params": "Parameters"})
               .style.format("{:,}", subset=["Parameters"]))
    right.metric("Parameters", f"{total:,}")
    right.metric("Variant", info.config.variant)
    with st.expander("model.summary()"):
        st.code(lenet.summary_text(shown), language=None)
    if info.config.variant == "lecun1998":
        st.markdown("**C3 connection table** (LeCun et al. 1998, Table I): each C3 map reads only the S2 maps "
                    "marked, which keeps C3 at 1,516 parameters instead of 2,416.")
        st.plotly_chart(figure(figures_network.c3_table_figure, lenet.C3_TABLE), key="inside_c3_table",
                        config={"displayModeBar": False})


def filters_view(info, model, live: bool) -> None:
    readable, problems = loaders.readable_epochs(info.run_id)
    for problem in problems:  # a damaged epoch snapshot: its epoch is left out of the slider
        st.warning(problem)
    saved, history = loaders.c1_history(info.run_id, readable)
    if not saved and model is None:
        st.caption("No epoch has finished yet; the filters appear after the first one.")
        return
    if not saved:
        from core.model import c1_kernels  # here, not at the top: it loads TensorFlow (see loaders.analysis)

        kernels, caption = c1_kernels(model), "the saved model"
    elif live or len(saved) == 1:
        kernels, caption = history[-1], f"after epoch {saved[-1]}"
    else:
        epoch = widgets.epoch_slider(FILTER_EPOCH, saved, info.run_id)
        kernels, caption = history[saved.index(epoch)], f"after epoch {epoch}"
    if live:
        st.caption(f"Training: updates every {LIVE_SECONDS} s. Epochs saved so far: {len(saved)}.")
    st.plotly_chart(figure(figures_network.kernel_figure, kernels, title=f"C1 filters {caption}"),
                    key="inside_filters", config={"displayModeBar": False})
    if len(saved) > 1:
        # A toggle, not an expander: a collapsed expander's chart is still drawn by the browser.
        if st.toggle("Play epoch by epoch (one colour range for all epochs)", key=ANIMATION):
            st.plotly_chart(figure(figures_network.kernel_animation, saved, history), key="inside_filters_animation")


def live_filters(info) -> None:
    current = common.store().inspect(info.path)
    if not current.active:
        st.rerun(scope="app")  # the run just ended: redraw the page with its saved model
    filters_view(current, None, live=True)


def filters_section(info, model) -> None:
    st.subheader("C1 filters")
    st.caption("The six 5×5 kernels of the first convolution; blue weights are positive, red negative, "
               "white zero.")
    if info.active:
        # no reruns while the tab is hidden (dashboard/live.py)
        st.fragment(run_every=LIVE_SECONDS if live.tab_visible() else None)(live_filters)(info)
    else:
        filters_view(info, model, live=False)


def feature_maps_section(run: AuditRun) -> None:
    info, names = run.info, run.names
    st.subheader("Feature maps")
    digit = widgets.pick_digit(widgets.INSIDE_PICKER, run.images, with_gallery=True)
    if digit is None:
        return
    chosen = explain.epoch_model(MAPS_EPOCH, info)  # the saved model, or the model after any epoch with weights
    if chosen is None:
        return
    maps = explain_loaders.maps_at(info, chosen.epoch, chosen.model, digit.x32)
    probs = maps["output"]
    pred = int(np.argmax(probs))
    picture, output = st.columns([1, 3])
    truth = f", true {names[digit.label]}" if digit.label is not None else ""
    picture.image(figures_audit.thumbnail(digit.x28, 5), caption=f"{digit.name}{truth}", output_format="PNG")
    by = "by the saved model" if chosen.epoch == explain.FINAL else f"by the model {chosen.caption}"
    picture.markdown(f"Predicted **{names[pred]}** ({figures_audit.share(probs[pred], 1)}) {by}")
    output.plotly_chart(figure(figures_audit.probability_bars, probs, names, true=digit.label, height=220,
                               title="Output: softmax over the 10 classes"),
                        key="inside_output")
    interactive = st.toggle("Interactive maps: hover shows each activation (slower to draw)", key=INTERACTIVE)
    st.caption("Each map is stretched to its own range, black (lowest) to white (highest); maps are "
               "numbered left to right, top to bottom.")
    for layer, title, columns, cell_height in MAP_LAYERS:
        if interactive:
            st.plotly_chart(figure(figures_network.feature_map_figure, maps[layer], columns=columns, title=title,
                                   cell_height=cell_height),
                            key=f"inside_map_{layer}", config={"displayModeBar": False})
        else:
            st.markdown(f"**{title}**")
            st.image(figure(figures_network.feature_map_image, maps[layer], columns), output_format="PNG")
    left, right = st.columns(2)
    for column, (layer, title) in zip((left, right), DENSE_LAYERS):
        column.plotly_chart(figure(figures_network.activation_figure, maps[layer], title=title),
                            key=f"inside_map_{layer}", config={"displayModeBar": False})
    st.markdown(f"**Why this answer?** Attribution maps, {chosen.caption}")
    explain.attribution_panel("inside", info, digit.x28, digit.x32, names, chosen)


def main() -> None:
    run = open_audit_run("Inside the model", with_model=True)
    if run is None:
        return
    layers_section(run.info, run.model)
    filters_section(run.info, run.model)
    feature_maps_section(run)


main()
