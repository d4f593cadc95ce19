"""A 45-minute class plan: an ordered walk through the app, one page per step.

Each step names the page, what to do there, a question for the class and how many minutes it
takes; a step on the Lessons page opens one recorded experiment (``?lesson=<key>``).

Example:
    >>> sum(step.minutes for step in CLASS_PLAN)
    45
    >>> CLASS_PLAN[0].page
    'pages/1_Data.py'
"""

from __future__ import annotations

import dataclasses

LESSONS_PAGE = "pages/9_Lessons.py"


@dataclasses.dataclass(frozen=True)
class Step:
    """One step of the class plan.

    Args:
        title: short heading.
        page: page file to open, relative to the repository root.
        minutes: time planned for it.
        instruction: what the class does there.
        question: what the teacher asks afterwards.
        lesson: experiment key when the step opens a recording on the Lessons page.
    """

    title: str
    page: str
    minutes: int
    instruction: str
    question: str
    lesson: str = ""


CLASS_PLAN: tuple[Step, ...] = (
    Step("Look at the data", "pages/1_Data.py", 5,
         "Browse the skull-strip slices with their mask overlay, then the synthetic lesions. "
         "Read the class balance of each.",
         "What share of the pixels is foreground in each dataset, and why does it matter?"),
    Step("The augmentation pitfall", "pages/2_Augment.py", 5,
         "Switch on a rotation and a shift, then tick 'Show the pitfall: augment the image "
         "only' and compare the outlines.",
         "Which transforms must also move the mask, and which may leave it alone?"),
    Step("What the bug costs", LESSONS_PAGE, 3,
         "Replay the recorded runs trained with and without the mask following the image.",
         "How much test Dice did the bug cost, and where do its predictions go wrong?",
         lesson="image_only_bug"),
    Step("Build a U-Net", "pages/3_Build.py", 5,
         "Change depth and base filters and watch parameters, memory and receptive field, "
         "and follow the skip connections across the U in the diagram.",
         "What does one extra level do to the parameter count and to the receptive field?"),
    Step("Why skip connections", LESSONS_PAGE, 5,
         "Replay the three skip settings; drag the epoch scrubber and compare the outlines.",
         "Where in the image do the runs with and without skips disagree?",
         lesson="skip_connections"),
    Step("Loss under imbalance", LESSONS_PAGE, 5,
         "Replay the five losses on the small lesions; look at the first epochs.",
         "Which loss finds the lesions first, and why can plain BCE stay empty?",
         lesson="loss_imbalance"),
    Step("Overfitting with ten images", LESSONS_PAGE, 5,
         "Compare the train-validation gap with and without augmentation, then with dropout "
         "and L2. Press Run it live on one run if the server has room.",
         "Which change closes the gap, and does the test Dice agree?",
         lesson="augmentation"),
    Step("Evaluate a model", "pages/5_Evaluate.py", 5,
         "Open a bundled model, look at its error map and its worst test images.",
         "Are the errors on the boundary or whole missed regions?"),
    Step("Segment your own image", "pages/6_Segment.py", 4,
         "Upload a slice (or use the example) and segment it; read the out-of-distribution "
         "warning.",
         "Why should you not trust this mask on a patient's scan?"),
    Step("Quiz", "pages/7_Learn.py", 3,
         "Answer the quiz at the bottom of the Learn page.",
         "Which answer surprised you?"),
)
"""The steps in class order (45 minutes in all)."""
