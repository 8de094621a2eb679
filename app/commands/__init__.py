"""The headless commands (no Qt, no training code). Each module exposes `register(subparsers)`;
its parser sets `func=run`, where `run(args) -> int` returns the exit code.

COMMANDS maps a command ("name", or "name action" for one action of a command shared between
layers) to (module, one-line help). `main.py` composes it with the window's (`ui.commands`)
and the training side's (`engines.train.commands`); `app.cli` builds the parser from the table
and imports only the command that runs."""

COMMANDS: dict[str, tuple[str, str]] = {
    "bench": ("app.commands.bench", "measure latency and FPS of an engine"),
    "build-engine": ("app.commands.build_engine", "build the TensorRT engine for this GPU (cached)"),
    "enroll": ("app.commands.enroll", "enrol a person from one or more photos"),
    "eval": ("app.commands.evaluate", "benchmark an engine: LFW verification or WIDER FACE detection AP"),
    "export onnx": ("app.commands.export", "the single-shot network as one ONNX file"),
    "gallery": ("app.commands.gallery", "list and edit the enrolled people"),
    "identify": ("app.commands.identify", "find and name the faces in an image"),
    "process": ("app.commands.process", "annotate a recorded video and log who appears when"),
    "soak": ("app.commands.soak", "long run on a live source: threads and memory must not grow"),
    "unknowns": ("app.commands.unknowns", "group the unknown faces of an event log by person"),
}
