"""What every `tf-seqmodels` subcommand shares: validated numeric argument types, the
one-line error contract and the quiet TensorFlow start-up. No TensorFlow import here.

Exit codes: 0 success; 1 an internal error (a bug: `--verbose` shows the traceback); 2 a user
error (bad flag, file, value: one line `tf-seqmodels <command>: error: ...`); 3 a stop by a
guard (non-finite loss, a search whose trials all failed); 130 an interrupt (Ctrl-C, SIGTERM
where the trainer turns it into an interrupt).
"""

from __future__ import annotations

import argparse
import os
import sys

EXIT_USER_ERROR = 2
EXIT_GUARD_STOP = 3
EXIT_INTERRUPTED = 130

# Exceptions by class name (any class in the MRO), so main() maps them without importing the
# modules that define them (TensorFlow). A new command adds its own error types here.
USER_ERRORS = ("ValueError", "FileNotFoundError", "FileExistsError", "IsADirectoryError",
               "NotADirectoryError", "PermissionError", "UnicodeError", "ExportError",
               "StrategyError", "OSError", "ImportError", "InvalidArgumentError", "NotFoundError",
               "CheckpointError")
GUARD_STOPS = ("NonFiniteLossError", "SearchFailedError", "GuardStop")
INTERRUPTS = ("KeyboardInterrupt", "TrainingInterrupted", "RunInterrupted")


def exit_code_of(error: BaseException) -> int:
  """The exit code of an exception escaping a command (see the module docstring)."""
  names = {cls.__name__ for cls in type(error).__mro__}
  if names & set(INTERRUPTS):
    return EXIT_INTERRUPTED
  if names & set(GUARD_STOPS):
    return EXIT_GUARD_STOP
  if names & set(USER_ERRORS):
    return EXIT_USER_ERROR
  return 1


def error_message(error: BaseException, max_lines: int = 6) -> str:
  """The message of `error` in at most `max_lines` lines (TensorFlow's run to dozens)."""
  text = str(error)
  if isinstance(error, KeyError) and error.args:
    text = str(error.args[0])
  if isinstance(error, OSError) and error.filename and error.strerror:
    text = f"{error.filename}: {error.strerror}"  # not "[Errno 21] Is a directory: 'x'"
  lines = [line.rstrip() for line in text.strip().splitlines() if line.strip()] or \
      [type(error).__name__]
  if len(lines) > max_lines:
    lines = lines[:max_lines] + [f"... ({len(lines) - max_lines} more lines; --verbose shows all)"]
  return "\n".join(line if len(line) <= 400 else line[:397] + "..." for line in lines)


def quiet_tensorflow(verbose: bool) -> None:
  """Hides TensorFlow's start-up noise (C++ INFO/WARNING logs, the CUDA stub and CPU-feature
  lines printed before absl logging starts, Python-side absl warnings) unless `verbose`.

  Imports TensorFlow with file descriptor 2 pointed at a temporary file: what TensorFlow's C++
  code prints while it loads is dropped, or replayed if the import itself fails.
  """
  os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0" if verbose else "3"
  if verbose or "tensorflow" in sys.modules:
    return
  import tempfile
  sys.stderr.flush()
  saved = os.dup(2)
  with tempfile.TemporaryFile(mode="w+b") as sink:
    os.dup2(sink.fileno(), 2)
    try:
      import tensorflow as tf  # noqa: F401
    except BaseException:
      os.dup2(saved, 2)
      sink.seek(0)
      sys.stderr.write(sink.read().decode(errors="replace"))
      raise
    finally:
      os.dup2(saved, 2)
      os.close(saved)
  import logging
  tf.get_logger().setLevel(logging.ERROR)
  try:
    from absl import logging as absl_logging
    absl_logging.set_verbosity(absl_logging.ERROR)
  except ImportError:
    pass


# --- validated numbers ----------------------------------------------------------------------

def _number(kind, low=None, low_open=False, high=None, what=""):
  def parse(text: str):
    try:
      value = kind(text)
    except ValueError:
      raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, "
                                       f"got {text!r}") from None
    if kind is float and value != value:  # NaN
      raise argparse.ArgumentTypeError(f"expected a number, got {text!r}")
    if low is not None and (value <= low if low_open else value < low):
      raise argparse.ArgumentTypeError(f"must be {'>' if low_open else '>='} {low}{what}, got "
                                       f"{text}")
    if high is not None and value > high:
      raise argparse.ArgumentTypeError(f"must be <= {high}, got {text}")
    return value
  parse.__name__ = "positive integer" if kind is int else "number"
  return parse


positive_int = _number(int, 1)
nonnegative_int = _number(int, 0)
positive_float = _number(float, 0.0, low_open=True)
nonnegative_float = _number(float, 0.0)


def add_verbose(parser) -> None:
  """`--verbose` on `parser` and on every subcommand below it (`chrombpnet pipeline`). Its
  default is SUPPRESS: a subcommand's parser must not reset a `--verbose` given before it
  (argparse writes a subparser's defaults over the parent's values)."""
  if not any("--verbose" in a.option_strings for a in parser._actions):  # pylint: disable=protected-access
    parser.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="show TensorFlow's logs and full tracebacks (for debugging)")
  for action in parser._actions:  # pylint: disable=protected-access
    if isinstance(action, argparse._SubParsersAction):  # pylint: disable=protected-access
      for subcommand in action.choices.values():
        add_verbose(subcommand)