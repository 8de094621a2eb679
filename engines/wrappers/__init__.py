"""One wrapper story: every wrapper around a `FaceEngine` is itself a `FaceEngine`, so callers
never know which they hold, and they stack.

- `locked.LockedEngine`: thread safety, one call at a time (the live session shares one engine
  between the sources' inference batches and enrolment).
- `hot_swap.HotSwapEngine`: background reload, serving with a ready engine while a better one is
  prepared (a TensorRT build), then switching between calls.
- `child_process.ProcessEngine`: the engine in a child process, for engines that hold Python's
  GIL (mtcnn-dlib), restarted if it crashes.

Which one an engine gets is decided where engines are made: `engines.backends.registry`
(hot swap under `--backend auto`), `app.engine_options.make_engine_for_gui` (child process) and
`app.live.session.LiveSession` (locked).
"""
