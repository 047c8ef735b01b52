"""DeepLIFT / DeepSHAP contributions by the rescale rule, as shap's DeepExplainer computes them.

    hyp = deeplift(model, one_hot, target)                 # [N, L, 4] hypothetical scores
    contrib = hyp * one_hot                                # actual contributions (they sum
                                                           #   to f(x) - mean_r f(r))
    m = deeplift_multipliers(model, one_hot, refs, target) # [N, L, 4] vs refs [N, L, 4]
    problems = deeplift_support(model, target)             # ops without a DeepLIFT rule

The model runs once on the concatenation [inputs; references] inside a tf.function, and
`tf.gradients` of the target walks back through the traced graph with the gradients of its
nonlinear ops replaced by DeepLIFT rules, each example paired with its reference across the
two batch halves:

  * element-wise nonlinearities (Relu, Sigmoid, Tanh, Softplus, Exp, Elu, Selu, ...): the
    rescale rule, d y / d x := (f(x) - f(x_ref)) / (x - x_ref), the plain gradient where
    |x - x_ref| < 1e-6;
  * MaxPool and Max (reduce_max): shap's rule. With M = max(y, y_ref), M - y_ref goes to
    the input's argmax, y - M to the reference's argmax, each divided by its x - x_ref, so
    the window's delta y - y_ref is distributed exactly;
  * linear ops (convolutions, dense, BatchNorm at inference, add, mean, slicing, a product
    with an input-independent tensor) keep their gradients.

Each rule distributes its output's difference-from-reference exactly, so the multipliers m
satisfy completeness: sum_{i,b} m[i, b] (x - ref)[i, b] = f(x) - f(ref) per reference, for
any model built of these ops (BPNet / ChromBPNet trunks and heads). For the "profile" target
the softmax weights are a stop-gradient, as in ChromBPNet: each row keeps its own weights w,
so the sum is sum_t w_t(x) (m_t(x) - m_t(ref)) of the mean-normalised logits m.

Ops outside these rules on the path from the input to the target (a product or quotient of
two input-dependent tensors, as in x * sigmoid(x), attention or LayerNorm; Softmax; a
stop-gradient of an input-dependent tensor inside the model; control flow or nested
functions) break completeness: `strict=True` raises `UnsupportedOpsError` naming them,
`strict=False` warns and keeps their plain gradients.

Hypothetical contributions use the genomics formula of the kundajelab DeepSHAP code over
dinucleotide-shuffled references (`contributions.dinucleotide_shuffles`, the same seeds as
`contributions.deepshap`): hyp[i, b] = mean_r (m_r[i, b] - sum_c r[i, c] m_r[i, c]).
"""

from __future__ import annotations

import collections
import dataclasses
import warnings
import weakref
from typing import Optional

import numpy as np
import tensorflow as tf

from tf_seqmodels.analysis.contributions import (Target, _require_gradients,
                                                 dinucleotide_shuffles, target_value)
from tf_seqmodels.analysis.inference import AnalysisModel, BatchRunner, _cached

# Below this |x - x_ref| the ratio (f(x) - f(x_ref)) / (x - x_ref) is float noise.
TINY_DELTA = 1e-6

_RESCALE_GRADIENT = "TfSeqmodelsDeepLiftRescale"
_MAX_GRADIENT = "TfSeqmodelsDeepLiftMax"

# Element-wise functions of one input: the op type -> the TF function (to recompute the plain
# gradient, which the overridden op no longer gives).
_ELEMENTWISE = {
    "Relu": lambda x, op: tf.nn.relu(x),
    "Relu6": lambda x, op: tf.nn.relu6(x),
    "LeakyRelu": lambda x, op: tf.nn.leaky_relu(x, op.get_attr("alpha")),
    "Elu": lambda x, op: tf.nn.elu(x),
    "Selu": lambda x, op: tf.nn.selu(x),
    "Sigmoid": lambda x, op: tf.math.sigmoid(x),
    "Tanh": lambda x, op: tf.math.tanh(x),
    "Softplus": lambda x, op: tf.math.softplus(x),
    "Softsign": lambda x, op: tf.math.softsign(x),
    "Exp": lambda x, op: tf.math.exp(x),
    "Expm1": lambda x, op: tf.math.expm1(x),
    "Log": lambda x, op: tf.math.log(x),
    "Log1p": lambda x, op: tf.math.log1p(x),
    "Erf": lambda x, op: tf.math.erf(x),
    "Square": lambda x, op: tf.math.square(x),
    "Sqrt": lambda x, op: tf.math.sqrt(x),
    "Rsqrt": lambda x, op: tf.math.rsqrt(x),
    "Abs": lambda x, op: tf.math.abs(x),
}


def _max_pool(x, op):
  return tf.nn.max_pool(x, op.get_attr("ksize"), op.get_attr("strides"),
                        op.get_attr("padding").decode(),
                        data_format=op.get_attr("data_format").decode())


def _reduce_max(x, op):
  return tf.reduce_max(x, axis=op.inputs[1], keepdims=op.get_attr("keep_dims"))


_MAX_LIKE = {"MaxPool": _max_pool, "Max": _reduce_max}

# Ops linear in their input-dependent inputs (whatever those are).
_LINEAR = frozenset((
    "Identity", "Snapshot", "EnsureShape", "Reshape", "ExpandDims", "Squeeze", "Transpose",
    "ConcatV2", "Concat", "Pack", "Unpack", "Split", "SplitV", "Slice", "StridedSlice",
    "GatherV2", "Gather", "Pad", "PadV2", "MirrorPad", "Tile", "BroadcastTo", "ReverseV2",
    "Roll", "Add", "AddV2", "AddN", "Sub", "Neg", "BiasAdd", "Sum", "Mean", "Cumsum", "Cast",
    "Conv2D", "Conv3D", "DepthwiseConv2dNative", "Conv2DBackpropInput", "AvgPool", "AvgPool3D",
    "SpaceToBatchND", "BatchToSpaceND", "SpaceToDepth", "DepthToSpace", "ZerosLike",
    "OnesLike"))
# Linear when at most one operand depends on the input (else a multiplicative interaction).
_BILINEAR = frozenset(("Mul", "MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3",
                       "Einsum"))
# Linear when the denominator (input 1) does not depend on the input.
_DIVISIONS = frozenset(("RealDiv", "Div", "DivNoNan", "TruncateDiv"))
_SELECT = frozenset(("Select", "SelectV2"))

# {FuncGraph: {op name: "rescale" or "plain"}}: the rule each overridden op's gradient uses,
# decided when the graph is checked (ops whose batch is not the paired batch keep "plain").
_RULES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


class UnsupportedOpsError(ValueError):
  """The traced model has ops on the input -> target path without a DeepLIFT rule."""


@dataclasses.dataclass(frozen=True)
class UnsupportedOp:
  op_type: str
  name: str
  reason: str


def _rule(op) -> str:
  return _RULES.get(op.graph, {}).get(op.name, "plain")


def _plain_gradient(op, fn, grad):
  """The ordinary gradient of `op` (recomputed: the op itself carries the override)."""
  x = op.inputs[0]
  return tf.gradients(fn(x, op), x, grad_ys=grad)[0]


def _halves(t):
  return tf.split(t, 2, axis=0)


def _rescale_gradient(op, grad):
  """Rescale rule for y = f(x): grad * (f(x) - f(x_ref)) / (x - x_ref), tiled to both halves."""
  plain = _plain_gradient(op, _ELEMENTWISE[op.type], grad)
  if _rule(op) != "rescale":
    return plain
  x_in, x_ref = _halves(op.inputs[0])
  y_in, y_ref = _halves(op.outputs[0])
  delta = x_in - x_ref
  tiny = tf.abs(delta) < TINY_DELTA
  ratio = (y_in - y_ref) / tf.where(tiny, tf.ones_like(delta), delta)
  return tf.where(tf.concat([tiny, tiny], 0), plain, grad * tf.concat([ratio, ratio], 0))


def _max_gradient(op, grad):
  """shap's max rule (see the module docstring), with the input half's upstream multipliers."""
  unused = [None] * (len(op.inputs) - 1)
  fn = _MAX_LIKE[op.type]
  if _rule(op) != "rescale":
    return [_plain_gradient(op, fn, grad)] + unused
  x_in, x_ref = _halves(op.inputs[0])
  y_in, y_ref = _halves(op.outputs[0])
  grad_in, _ = _halves(grad)
  cross = tf.maximum(y_in, y_ref)
  routed = tf.concat([grad_in * (cross - y_ref), grad_in * (y_in - cross)], 0)
  to_input, to_reference = _halves(_plain_gradient(op, fn, routed))
  delta = x_in - x_ref
  tiny = tf.abs(delta) < TINY_DELTA
  multiplier = tf.where(tiny, tf.zeros_like(delta),
                        (to_input + to_reference) / tf.where(tiny, tf.ones_like(delta), delta))
  return [tf.concat([multiplier, multiplier], 0)] + unused


def _register_gradients() -> None:
  for name, fn in ((_RESCALE_GRADIENT, _rescale_gradient), (_MAX_GRADIENT, _max_gradient)):
    try:
      tf.RegisterGradient(name)(fn)
    except KeyError:  # already registered (a module reload): the first registration stays
      pass


_register_gradients()
_OVERRIDES = {**{op_type: _RESCALE_GRADIENT for op_type in _ELEMENTWISE},
              **{op_type: _MAX_GRADIENT for op_type in _MAX_LIKE}}


# --- checking the traced graph --------------------------------------------------------------

def _differentiable(t: tf.Tensor) -> bool:
  return t.dtype.is_floating


def _input_dependent_ops(source: tf.Tensor) -> set:
  """Ops whose outputs depend on `source` (all dtypes; used for data-dependent conditions)."""
  found, stack = set(), [source]
  while stack:
    for consumer in stack.pop().consumers():
      if consumer not in found:
        found.add(consumer)
        stack.extend(consumer.outputs)
  return found


def _path_ops(source: tf.Tensor, output: tf.Tensor, dependent: set) -> set:
  """Ops that carry gradient from `output` back to `source` (float edges; a StopGradient
  ends a path)."""
  found, stack = set(), [output.op]
  while stack:
    op = stack.pop()
    if op in found or op not in dependent or op.type in ("StopGradient", "PreventGradient"):
      continue
    found.add(op)
    stack.extend(t.op for t in op.inputs if _differentiable(t) and t.op in dependent)
  return found


def _reduces_batch(op) -> bool:
  axes = tf.get_static_value(op.inputs[1])
  rank = op.inputs[0].shape.rank
  return axes is None or rank is None or 0 in np.atleast_1d(axes) % rank


def _check_graph(source: tf.Tensor, output: tf.Tensor, target_ops: set,
                 pairs: Optional[int]) -> list[UnsupportedOp]:
  """Classifies the ops between `source` ([2 * pairs, ...], inputs then references) and
  `output`; records the rule of each overridden op and returns the unsupported ones."""
  dependent = _input_dependent_ops(source)
  path = _path_ops(source, output, dependent)
  rules = _RULES.setdefault(source.graph, {})
  problems = []

  def varies(t):
    return _differentiable(t) and (t is source or t.op in path)

  for op in path:
    variable = [varies(t) for t in op.inputs]
    reason = None
    if op.type in _ELEMENTWISE or op.type in _MAX_LIKE:
      batch = op.inputs[0].shape[0] if op.inputs[0].shape.rank else None
      if pairs is not None and batch != 2 * pairs:
        reason = "its batch axis is not the leading [inputs; references] axis"
      elif op.type == "MaxPool" and op.get_attr("padding") == b"EXPLICIT":
        reason = "explicit padding"
      elif op.type == "Max" and _reduces_batch(op):
        reason = "it reduces over the batch axis (or a dynamic axis)"
      rules[op.name] = "plain" if reason else "rescale"
    elif op.type in _LINEAR:
      pass
    elif op.type == "FusedBatchNormV3" or op.type == "FusedBatchNorm":
      if op.get_attr("is_training"):
        reason = "batch statistics (training-mode BatchNorm)"
      elif any(variable[1:]):
        reason = "input-dependent normalisation parameters"
    elif op.type in _BILINEAR:
      if sum(variable) > 1:
        reason = "a product of two input-dependent tensors (multiplicative interaction)"
    elif op.type in _DIVISIONS:
      if variable[1]:
        reason = "division by an input-dependent tensor"
    elif op.type in _SELECT:
      if op.inputs[0].op in dependent:
        reason = "an input-dependent selection (piecewise function)"
    else:
      reason = "no DeepLIFT rule for this op type"
      if op.type in ("PartitionedCall", "StatefulPartitionedCall", "While", "StatelessWhile",
                     "If", "StatelessIf", "TensorListStack"):
        reason = "control flow or a nested tf.function (its ops cannot be overridden)"
      elif op.type == "IdentityN":
        reason = "a tf.custom_gradient function (e.g. silu)"
    if reason:
      problems.append(UnsupportedOp(op.type, op.name, reason))
  # A stop-gradient of an input-dependent tensor inside the model hides part of f(x) - f(ref)
  # (the profile target's softmax weights are the documented ChromBPNet convention).
  for op in dependent:
    if op.type == "StopGradient" and op not in target_ops and _feeds(op, output):
      problems.append(UnsupportedOp(op.type, op.name, "a stop-gradient of an input-dependent "
                                    "tensor (its share of f(x) - f(ref) is not attributed)"))
  return sorted(problems, key=lambda p: p.name)


def _feeds(op, output: tf.Tensor) -> bool:
  """Whether `output` depends on `op` through float tensors."""
  seen, stack = set(), [output.op]
  while stack:
    current = stack.pop()
    if current is op:
      return True
    if current in seen:
      continue
    seen.add(current)
    stack.extend(t.op for t in current.inputs if _differentiable(t))
  return False


def describe_problems(problems: list[UnsupportedOp]) -> str:
  """One line per (op type, reason) with a count and up to three op names."""
  groups = collections.OrderedDict()
  for p in problems:
    groups.setdefault((p.op_type, p.reason), []).append(p.name)
  return "\n".join(f"  {op_type} x{len(names)}: {reason} (e.g. {', '.join(names[:3])})"
                   for (op_type, reason), names in groups.items())


# --- multipliers ----------------------------------------------------------------------------

def _multiplier_fn(model: AnalysisModel, target: Target):
  """fn(pairs [b, 2, L, 4] (input, reference)) -> rescale-rule multipliers [b, L, 4].

  Must run inside a tf.function (BatchRunner's step): the overrides and `tf.gradients` need
  a graph. Tracing records the unsupported ops in `fn.problems`; the eager caller raises or
  warns (an error raised while tracing would reach the user wrapped in AutoGraph frames).
  """
  @tf.autograph.experimental.do_not_convert
  def fn(pairs):
    pairs = tf.convert_to_tensor(pairs, tf.float32)
    x = tf.concat([pairs[:, 0], pairs[:, 1]], axis=0)  # [2b, L, 4]: inputs, then references
    graph = tf.compat.v1.get_default_graph()
    with graph.gradient_override_map(_OVERRIDES):
      outputs = model(x)
      first_target_op = len(graph.get_operations())
      value = target_value(target, outputs, model.position_axes.get(target.head))  # [2b]
    target_ops = set(graph.get_operations()[first_target_op:])
    fn.problems = _check_graph(x, value, target_ops, pairs.shape[0])
    gradient = tf.gradients(value, x)[0]  # outside the override map: plain ops stay plain
    if gradient is None:  # the target does not depend on the input at all
      gradient = tf.zeros_like(x)
    return gradient[:tf.shape(pairs)[0]]
  fn.problems = []
  return fn


def _report(model: AnalysisModel, target: Target, problems: list[UnsupportedOp],
            strict: bool) -> None:
  if not problems:
    return
  name = type(model.model).__name__ if model.name == "model" else model.name
  message = (f"deeplift: {name} has ops on the path from the input to target "
             f"{target.head!r} without a DeepLIFT rule, so completeness (contributions summing "
             f"to f(x) - f(ref)) does not hold exactly:\n{describe_problems(problems)}")
  if strict:
    raise UnsupportedOpsError(message + "\nPass strict=False (CLI: --allow-unsupported-ops) to "
                              "keep their plain gradients, or use deepshap (expected gradients).")
  warnings.warn(message + "\n(strict=False: their plain gradients are used)", stacklevel=3)


def _check_model(model: AnalysisModel) -> None:
  _require_gradients(model)
  if not tf.executing_eagerly():
    raise RuntimeError("deeplift runs its own tf.function: call it eagerly")


def deeplift_support(model: AnalysisModel, target: Target,
                     sequence_length: Optional[int] = None) -> list[UnsupportedOp]:
  """The ops of `model` on the input -> `target` path without a DeepLIFT rule ([] when
  DeepLIFT multipliers of this target satisfy completeness exactly). Traces, runs nothing."""
  _check_model(model)
  length = sequence_length or model.sequence_length
  if length is None:
    raise ValueError(f"{model.name} has no fixed input length: pass sequence_length")
  fn = _multiplier_fn(model, target)
  tf.function(fn).get_concrete_function(tf.TensorSpec([1, 2, length, 4], tf.float32))
  return list(fn.problems)


def deeplift_multipliers(model: AnalysisModel, one_hot: np.ndarray, references: np.ndarray,
                         target: Target, runner: Optional[BatchRunner] = None,
                         batch_size: int = 32, strict: bool = True,
                         progress: bool = False) -> np.ndarray:
  """Rescale-rule multipliers [N, L, 4] of `target` at `one_hot` [N, L, 4] against
  `references` [N, L, 4] (row i against row i): sum (m * (x - ref)) = f(x) - f(ref) per row
  (see the module docstring for the exceptions).

  Raises UnsupportedOpsError (strict) or warns when the model has ops without a rule."""
  from tqdm import tqdm
  _check_model(model)
  one_hot = np.asarray(one_hot, np.float32)
  references = np.asarray(references, np.float32)
  if one_hot.shape != references.shape or one_hot.ndim != 3:
    raise ValueError(f"inputs {one_hot.shape} and references {references.shape} must both be "
                     f"[N, L, 4]")
  runner = runner or BatchRunner()
  fn = _cached(model, ("deeplift", target.to_json()), lambda: _multiplier_fn(model, target))
  pairs = np.stack([one_hot, references], axis=1)  # [N, 2, L, 4]
  # Full batches only (the last one padded with zero pairs): one traced shape, whose static
  # batch lets the graph check verify the pairing of the two halves.
  step = max(1, min(batch_size, len(pairs)))
  out = np.zeros(one_hot.shape, np.float32)
  for i in tqdm(range(0, len(pairs), step), desc="deeplift", unit="batch",
                disable=not progress):
    chunk = pairs[i:i + step]
    if len(chunk) < step:
      chunk = np.concatenate([chunk, np.zeros((step - len(chunk),) + chunk.shape[1:],
                                              np.float32)])
    multipliers = runner.run(fn, chunk)
    if i == 0:  # traced by now: refuse (strict) before any further work, or warn once
      _report(model, target, fn.problems, strict)
    out[i:i + step] = multipliers[:len(pairs) - i]
  return out


def deeplift(model: AnalysisModel, one_hot: np.ndarray, target: Target,
             runner: Optional[BatchRunner] = None, num_references: int = 10, seed: int = 0,
             batch_size: int = 32, strict: bool = True, progress: bool = False) -> np.ndarray:
  """DeepLIFT (rescale rule) hypothetical contributions [N, L, 4] against dinucleotide-shuffled
  references (`num_references` per sequence, sequence k seeded `seed + k`), in the layout of
  `contributions.deepshap`; multiply by `one_hot` for the actual contributions."""
  one_hot = np.asarray(one_hot, np.float32)
  if one_hot.ndim != 3 or one_hot.shape[-1] != 4:
    raise ValueError(f"one_hot must be [N, L, 4], got {one_hot.shape}")
  if num_references < 1:
    raise ValueError(f"num_references must be >= 1, got {num_references}")
  n = len(one_hot)
  references = np.concatenate([dinucleotide_shuffles(one_hot[k], num_references, seed + k)
                               for k in range(n)])  # [N * R, L, 4]
  inputs = np.repeat(one_hot, num_references, axis=0)
  multipliers = deeplift_multipliers(model, inputs, references, target, runner, batch_size,
                                     strict, progress)
  # hypothetical(b, i) = m[i, b] - sum_c r[i, c] m[i, c], averaged over references.
  hypothetical = multipliers - (references * multipliers).sum(-1, keepdims=True)
  return hypothetical.reshape(n, num_references, *one_hot.shape[1:]).mean(axis=1)
