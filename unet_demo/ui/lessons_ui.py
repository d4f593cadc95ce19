"""The Lessons page: recorded experiments replayed at once, and the 45-minute class plan.

Viewing only reads the recordings under ``lessons/`` (no TensorFlow, no training): the curves
replay in the browser, the epoch scrubber shows every run's validation predictions side by
side, and the answer sentence is built from the recorded numbers. "Run it live" queues the
same `RunSpec` through the job manager and opens the Train page on it; "Open in Train" and
"Open in Build" carry the settings as shareable links (``?x=``).

Example:
    >>> lessons_page()  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import math

import streamlit as st
from streamlit.errors import StreamlitAPIException

from unet_demo.errors import UNetDemoError
from unet_demo.lessons.catalogue import MEASURES, get_experiment, list_experiments
from unet_demo.lessons.class_plan import CLASS_PLAN, LESSONS_PAGE
from unet_demo.lessons.recordings import ExperimentRecording, load_experiment
from unet_demo.lessons.replay import answer_sentence, best_run, format_measure, verdict

PREFIX = "lessons."
LESSON_PARAM = "lesson"
TRAIN_PAGE = "pages/4_Train.py"
BUILD_PAGE = "pages/3_Build.py"
LEARN_PAGE = "pages/7_Learn.py"


@st.cache_resource(max_entries=32, show_spinner=False)
def cached_recording(key: str) -> ExperimentRecording:
    """The experiment's recording, read once per server process (read-only, shared)."""
    return load_experiment(get_experiment(key))


def _link(page: str, label: str, query: dict[str, str] | None = None, icon: str = "") -> None:
    """A page link; outside the app's menu (tests, legacy mode) a caption naming the page."""
    try:
        st.page_link(page, label=label, icon=icon or None, query_params=query)
    except (StreamlitAPIException, KeyError):
        name = page.split("_", 1)[-1].removesuffix(".py")
        suffix = "?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else ""
        st.caption(f"Link: {label} ({name} page{suffix})")


def _chosen_key() -> str:
    keys = [experiment.key for experiment in list_experiments()]
    state = st.session_state
    wanted = st.query_params.get(LESSON_PARAM)
    if wanted in keys and state.get(PREFIX + "seen_param") != wanted:
        state[PREFIX + "seen_param"] = wanted
        state[PREFIX + "experiment"] = wanted
    state.setdefault(PREFIX + "experiment", keys[0])
    titles = {e.key: f"{number}. {e.title}" for number, e in enumerate(list_experiments(), 1)}
    key = st.selectbox("Experiment", keys, format_func=titles.__getitem__,
                       key=PREFIX + "experiment",
                       help="Each experiment is one question, answered by two to five recorded "
                            "runs that differ in one setting.")
    if st.query_params.get(LESSON_PARAM) != key:
        st.query_params[LESSON_PARAM] = key
        state[PREFIX + "seen_param"] = key
    return key


def results_table(recording: ExperimentRecording) -> list[dict]:
    """One row per recorded run: its label, the changed setting, scores, time."""
    experiment = recording.experiment
    rows = []
    for lesson_run in experiment.runs:
        run = recording.runs.get(lesson_run.key)
        field = experiment.varies[0] if len(experiment.varies) == 1 else ", ".join(experiment.varies)
        row = {"run": lesson_run.label, "setting": field}
        for name in ("test_dice", "gap", "train_gflop", "receptive_field", "train_seconds"):
            value = run.measure(name) if run else math.nan
            row[MEASURES[name]] = None if not math.isfinite(value) else round(value, 3)
        rows.append(row)
    return rows


def curves_ui(recording: ExperimentRecording) -> None:
    """The overlaid, replayable train/val Dice curves of every recorded run."""
    from unet_demo.plots.lessons import lesson_curves_figure

    runs = [(recording.experiment.run(key).label, run.history)
            for key, run in recording.runs.items()]
    st.plotly_chart(lesson_curves_figure(runs), key=PREFIX + "curves." + recording.experiment.key)
    st.caption("Press ▶ Replay to draw the curves epoch by epoch (about 3 s), ⏭ End to jump "
               "to the finished curves.")


def scrubber_ui(recording: ExperimentRecording) -> None:
    """Epoch slider; every run's validation predictions at that epoch, one row per run."""
    from unet_demo.plots.lessons import prediction_strip

    epochs = sorted({e for run in recording.runs.values() for e in run.epochs})
    if not epochs:
        st.info("This recording has no snapshots.")
        return
    left, right = st.columns([3, 1])
    with left:
        if len(epochs) > 1:
            epoch = st.select_slider("Epoch", epochs, value=epochs[-1],
                                     key=PREFIX + "epoch." + recording.experiment.key)
        else:
            epoch = epochs[0]
    with right:
        probability = st.toggle("Probability maps", key=PREFIX + "probability",
                                help="Grey levels instead of the thresholded mask: blur and "
                                     "checkerboard artefacts show here.")
    st.caption(f"Validation images at epoch {epoch}: orange = prediction, blue outline = the "
               "true mask" + (" (here: the probability, white = 1)" if probability else "") + ".")
    for key, run in recording.runs.items():
        frame = run.frame(epoch)
        strip = prediction_strip(run.images, run.masks, run.labels[frame],
                                 run.probability[frame] if probability else None)
        st.image(strip, caption=f"{recording.experiment.run(key).label} (epoch "
                                f"{run.epochs[frame]}, test Dice {run.test_dice:.2f})")


def _owner() -> str:
    from unet_demo.ui.owner import owner_secret

    return owner_secret()


def run_live(experiment_key: str, run_key: str) -> str:
    """Queue the recorded run's spec through the job manager; its run id.

    Args:
        experiment_key: the experiment.
        run_key: which of its runs.
    """
    from unet_demo.training.jobs import get_job_manager

    experiment = get_experiment(experiment_key)
    view = get_job_manager().submit(experiment.run(run_key).spec, owner=_owner(),
                                    label=f"lesson {experiment.key}: {experiment.run(run_key).label}"[:60],
                                    preset="classroom")
    return view.run_id


def actions_ui(recording: ExperimentRecording) -> None:
    """Run it live (queue), Open in Train and Open in Build links for one chosen run."""
    from unet_demo.training.links import BuildLink, TrainLink, encode_link

    experiment = recording.experiment
    labels = {run.key: run.label for run in experiment.runs}
    run_key = st.radio("Run", list(labels), format_func=labels.__getitem__, horizontal=True,
                       key=PREFIX + "run." + experiment.key)
    spec = experiment.run(run_key).spec
    live, train, build = st.columns(3)
    with live:
        if st.button("Run it live", key=PREFIX + "live", icon=":material/play_arrow:",
                     help="Train exactly this run again through the server's queue. On a CPU "
                          "the curve matches the recording: bit for bit with the same kind of "
                          "CPU and speed setting (the run's facts line names it), otherwise "
                          "up to round-off."):
            try:
                run_id = run_live(experiment.key, run_key)
            except UNetDemoError as error:
                st.error(str(error))
            else:
                st.session_state[PREFIX + "live_run"] = run_id
                with contextlib.suppress(StreamlitAPIException):  # no menu (AppTest)
                    st.switch_page(TRAIN_PAGE, query_params={"run": run_id})
        if st.session_state.get(PREFIX + "live_run"):
            st.caption(f"Queued run {st.session_state[PREFIX + 'live_run']}.")
    with train:
        token = encode_link(TrainLink(spec, "classroom", True, f"lesson {experiment.key}"[:60]))
        _link(TRAIN_PAGE, "Open in Train", {"x": token}, ":material/model_training:")
        if spec.data.image_size != 128:
            st.caption(f"The Train form has no image-size box: it trains at 128 px, not the "
                       f"recording's {spec.data.image_size} px. Run it live trains the recorded "
                       "settings exactly.")
    with build:
        _link(BUILD_PAGE, "Open in Build", {"x": encode_link(BuildLink(spec.model))},
              ":material/construction:")
    st.session_state[PREFIX + "train_link"] = token


def experiment_ui(key: str) -> None:
    """One experiment: question, guide, answer, verdict, curves, scrubber, table, actions."""
    experiment = get_experiment(key)
    recording = cached_recording(key)
    st.subheader(experiment.question)
    st.markdown(f"**The guide says:** {experiment.guide_says}")
    if not recording.runs:
        st.warning("Not recorded yet: run `scripts/record_lessons.py` on the server.")
        return
    st.success(f"**Measured:** {answer_sentence(recording)}", icon=":material/straighten:")
    judged = verdict(recording)
    (st.warning if judged.agrees is False else st.info)(judged.text)
    if recording.missing:
        st.caption(f"Not recorded yet: {', '.join(recording.missing)}.")
    curves_ui(recording)
    if experiment.look_at:
        st.markdown(f"**Where to look:** {experiment.look_at}")
    scrubber_ui(recording)
    st.dataframe(results_table(recording), hide_index=True)
    st.caption("Training Dice is the running mean over each epoch's batches with dropout and "
               "batch statistics active, so early on it can sit below validation Dice (a "
               "negative gap). Compute is 3 x forward FLOPs x images seen; wall time was "
               "measured on a shared, busy machine, so compare compute, not seconds.")
    best = best_run(recording)
    if best:
        first = experiment.measures[0]
        st.caption(f"Best by {MEASURES[first]}: {experiment.run(best).label} "
                   f"({format_measure(first, recording.runs[best].measure(first))}). One "
                   "seed, a short run on a capped training set: differences of a point or two "
                   "are noise.")
    actions_ui(recording)
    if experiment.learn:
        _link(LEARN_PAGE, "Read the idea on the Learn page", icon=":material/school:")


def _go(delta: int) -> None:
    state = st.session_state
    state[PREFIX + "step"] = max(0, min(len(CLASS_PLAN) - 1, state.get(PREFIX + "step", 0) + delta))


def class_plan_ui() -> None:
    """The 45-minute class plan: the current step, Previous / Next, a link per step."""
    state = st.session_state
    index = state.setdefault(PREFIX + "step", 0)
    step = CLASS_PLAN[index]
    total = sum(s.minutes for s in CLASS_PLAN)
    st.markdown(f"**Step {index + 1} of {len(CLASS_PLAN)}: {step.title}** ({step.minutes} min of "
                f"{total})")
    st.markdown(step.instruction)
    st.markdown(f"**Ask the class:** {step.question}")
    query = {LESSON_PARAM: step.lesson} if step.lesson else None
    _link(step.page, f"Open step {index + 1}: {step.title}", query, ":material/arrow_forward:")
    back, forward = st.columns(2)
    back.button("Previous", key=PREFIX + "prev", on_click=_go, args=(-1,), disabled=index == 0,
                icon=":material/arrow_back:")
    forward.button("Next", key=PREFIX + "next", on_click=_go, args=(1,),
                   disabled=index == len(CLASS_PLAN) - 1, icon=":material/arrow_forward:")
    with st.expander("The whole plan"):
        for number, item in enumerate(CLASS_PLAN, 1):
            where = f"Lessons: {get_experiment(item.lesson).title}" if item.lesson else \
                item.page.split("_", 1)[-1].removesuffix(".py")
            st.markdown(f"{number}. **{item.title}** ({item.minutes} min, {where}): "
                        f"{item.question}")
    if step.page == LESSONS_PAGE and step.lesson and st.button(
            "Show this experiment here", key=PREFIX + "plan_open"):
        state[PREFIX + "experiment"] = step.lesson
        st.query_params[LESSON_PARAM] = step.lesson
        state[PREFIX + "seen_param"] = step.lesson
        st.rerun()


def lessons_page() -> None:
    """Draw the page: the class plan above, the chosen experiment below."""
    with st.expander("45-minute class plan", expanded=False, icon=":material/school:"):
        class_plan_ui()
    experiment_ui(_chosen_key())
