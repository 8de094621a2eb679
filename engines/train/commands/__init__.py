"""The training side's commands: teacher labels, training, and a checkpoint published as the
shipped weights. Same table shape as `app.commands.COMMANDS`; `main.py` composes them. Nothing
that runs in the product imports this package."""

COMMANDS: dict[str, tuple[str, str]] = {
    "export weights": ("engines.train.commands.export_weights", "a training checkpoint as the shipped weights file"),
    "label": ("engines.train.commands.label", "pseudo-label training images with the teachers (MTCNN + dlib)"),
    "label-views": ("engines.train.commands.label_views",
                    "label training images with YuNet + SFace, storing face crops and their teacher-embedded views"),
    "train": ("engines.train.commands.train", "train the single-shot network from the teachers' labels"),
}
