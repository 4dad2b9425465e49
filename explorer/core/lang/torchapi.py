"""What a program may reach of torch, math and random: the allow-list, by category.

The categories come from torch's own namespaces. Pointwise functions are every `torch.<name>` whose ATen
operator carries torch's `pointwise` tag (read from torch at first use, so a new torch brings its new
pointwise ops along); reductions, shape functions, linear algebra, constructors and the rest are short
lists of torch names. A tensor method is allowed when its name is an allowed torch function, the in-place
form of one, or one of the tensor's own methods listed here. Everything not reached through this module
(files, the network, `torch.load`, `jit`, `hub`, `ops`, `utils`, `distributed`, ...) does not exist for a
program.

`namespace(name)` gives the module a program imports (`torch`, `torch.nn`, `torch.nn.functional`,
`torch.optim`, `torch.autograd`, `torch.nn.init`, `math`, `random`); `REFUSED` says why the famous
dangerous names are missing.
"""

from __future__ import annotations

import math
from functools import cache

import torch
import torch.nn as nn
import torch.nn.functional as F

# Names a program may not reach, with the reason it is told.
REFUSED = {
    "load": "the app never reads files from a program",
    "save": "the app never writes files from a program",
    "hub": "nothing is downloaded from a program",
    "jit": "torch.jit compiles code; programs are interpreted",
    "compile": "torch.compile generates code; programs are interpreted",
    "ops": "torch.ops reaches every native operator; use the torch functions",
    "classes": "torch.classes reaches native classes",
    "utils": "torch.utils reaches files, data loaders and extensions",
    "distributed": "programs run in one process",
    "multiprocessing": "programs run in one process",
    "cuda": "programs run on the CPU",
    "backends": "programs cannot change torch's settings",
    "from_numpy": "numpy is not available to programs",
    "from_file": "the app never reads files from a program",
    "frombuffer": "programs cannot read raw memory",
    "set_default_dtype": "programs cannot change torch's global settings",
    "set_default_device": "programs cannot change torch's global settings",
    "set_num_threads": "programs cannot change torch's global settings",
    "as_strided": "as_strided can read memory outside a tensor; use view, reshape or indexing",
    "empty": "torch.empty holds whatever was in memory; use zeros or ones",
    "set_": "set_ replaces a tensor's memory",
    "storage": "programs cannot reach a tensor's raw storage",
    "untyped_storage": "programs cannot reach a tensor's raw storage",
    "data_ptr": "programs cannot reach raw memory",
    "numpy": "numpy is not available to programs: use .tolist() or .item()",
    "register_hook": "hooks would run program code inside autograd's engine",
    "apply_": "apply_ runs a Python function per element",
    "map_": "map_ runs a Python function per element",
    "resize_": "resize_ changes a tensor's memory",
    "share_memory_": "programs run in one process",
    "pin_memory": "programs run on the CPU",
}

# -------------------------------------------------------------------------------------- torch, by category

REDUCTIONS = frozenset(
    """
sum mean prod max min amax amin argmax argmin std var norm logsumexp cumsum cumprod all any median
count_nonzero dist aminmax nansum nanmean std_mean var_mean cummax cummin
""".split()
)

SHAPES = frozenset(
    """
reshape flatten squeeze unsqueeze transpose permute cat concat concatenate stack hstack vstack split
chunk narrow t movedim moveaxis flip fliplr flipud roll gather index_select masked_select where tril
triu diag diagonal broadcast_to tile repeat_interleave unbind take take_along_dim select swapaxes
swapdims sort argsort topk kthvalue unique searchsorted bucketize scatter scatter_add index_add
index_copy index_fill masked_scatter tensor_split atleast_1d atleast_2d cumulative_trapezoid trapezoid
diag_embed block_diag column_stack row_stack
""".split()
)

LINALG = frozenset(
    "matmul mm bmm mv dot vdot outer ger inner addmm addmv addbmm baddbmm einsum kron trace cross".split()
)

CONSTRUCTORS = frozenset(
    """
tensor as_tensor ones zeros full eye arange linspace logspace rand randn randint randperm rand_like
randn_like randint_like ones_like zeros_like full_like normal bernoulli multinomial poisson
""".split()
)

COMPARISONS = frozenset(
    "eq ne gt lt ge le allclose isclose equal greater less greater_equal less_equal not_equal".split()
)

ELEMENTWISE_EXTRA = frozenset(
    "add sub subtract mul multiply div divide pow remainder fmod floor_divide".split()
)

NN_LIKE = frozenset("softmax log_softmax dropout layer_norm relu sigmoid tanh".split())

GRAD_MODE = frozenset("no_grad enable_grad set_grad_enabled is_grad_enabled inference_mode".split())

OTHER = frozenset(
    "manual_seed seed is_tensor is_floating_point numel clone detach result_type promote_types".split()
)

DTYPE_NAMES = frozenset(
    """
float32 float float64 double float16 half bfloat16 int64 long int32 int int16 int8 uint8 bool
""".split()
)

CONSTANTS = {"pi": math.pi, "e": math.e, "inf": math.inf, "nan": math.nan}

# Calls whose result can be much larger than their inputs: their output shape is computed on meta tensors
# before they run, and refused above the element limit.
GROWERS = frozenset(
    """
repeat tile repeat_interleave outer ger kron cartesian_prod combinations cdist einsum diag diag_embed
block_diag broadcast_to expand expand_as new_ones new_zeros new_full new_tensor one_hot pad meshgrid
index_put index_add scatter unique_consecutive vander tril_indices triu_indices
""".split()
)

# Products whose multiply-adds count against the program's budget.
PRODUCTS = frozenset(
    "matmul mm bmm mv dot vdot outer ger inner addmm addmv addbmm baddbmm einsum linear kron".split()
)


@cache
def pointwise() -> frozenset[str]:
    """`torch.<name>` functions whose ATen operator torch tags as pointwise (read once, from torch)."""
    names = set()
    aten = torch.ops.aten
    for name in dir(torch):
        if name.startswith("_") or not callable(getattr(torch, name, None)) or not hasattr(aten, name):
            continue
        packet = getattr(aten, name)
        try:
            overloads = packet.overloads()
            op = getattr(packet, "default" if "default" in overloads else overloads[0])
        except (AttributeError, IndexError, RuntimeError):
            continue
        if torch.Tag.pointwise in getattr(op, "tags", ()):
            names.add(name)
    return frozenset(names)


@cache
def torch_functions() -> frozenset[str]:
    """Every `torch.<name>` function a program may call."""
    wanted = (
        pointwise()
        | REDUCTIONS
        | SHAPES
        | LINALG
        | CONSTRUCTORS
        | COMPARISONS
        | ELEMENTWISE_EXTRA
        | NN_LIKE
        | GRAD_MODE
        | OTHER
    )
    return frozenset(n for n in wanted if n not in REFUSED and callable(getattr(torch, n, None)))


# The tensor's own methods beside the torch functions (conversions, bookkeeping, in-place fills).
TENSOR_METHODS = (
    frozenset(
        """
item tolist backward detach detach_ requires_grad_ retain_grad zero_ fill_ copy_ clone contiguous numel size
dim view view_as reshape_as expand expand_as double float half bfloat16 long int bool to type_as cpu
new_tensor new_zeros new_ones new_full is_contiguous stride element_size nelement normal_ uniform_
masked_fill masked_fill_ index_put_ index_put scatter_ scatter_add_ index_add_ index_fill_ add_ sub_ mul_
div_ pow_ clamp_ clip_ exp_ log_ neg_ abs_ sqrt_ sigmoid_ tanh_ relu_ round_ floor_ ceil_ sum_to_size
unfold all any argmax argmin max min sum mean std var norm softmax log_softmax apply_ is_floating_point
unsqueeze_ squeeze_ t_ transpose_ bernoulli_ exponential_ random_ abs type logsumexp square
""".split()
    )
    - REFUSED.keys()
)

# Attributes that are values, not methods; the settable ones a program may assign.
TENSOR_ATTRIBUTES = frozenset(
    "grad data requires_grad grad_fn is_leaf shape dtype T mT H ndim device layout".split()
)
TENSOR_SETTABLE = frozenset("grad data requires_grad".split())


@cache
def tensor_methods() -> frozenset[str]:
    """Every method a program may call on a tensor."""
    torch_names = torch_functions()
    names = set(TENSOR_METHODS)
    for name in dir(torch.Tensor):
        if name.startswith("_") or name in REFUSED:
            continue
        base = name[:-1] if name.endswith("_") else name
        if base in torch_names or base in TENSOR_METHODS:
            names.add(name)
    return frozenset(n for n in names if callable(getattr(torch.Tensor, n, None)))


# ------------------------------------------------------------------------------------------- torch.nn

NN_CLASSES = frozenset(
    """
Module Linear ReLU Sigmoid Tanh GELU LeakyReLU ELU SiLU Softplus Softmax LogSoftmax Identity Flatten
Sequential ModuleList ModuleDict Embedding LayerNorm Dropout MSELoss BCELoss BCEWithLogitsLoss
CrossEntropyLoss NLLLoss L1Loss SmoothL1Loss HuberLoss Parameter
""".split()
)

# Methods of nn.Module instances a program may call (attributes set by the module itself, parameters,
# buffers and submodules are reachable too).
MODULE_METHODS = frozenset(
    """
parameters named_parameters children named_children modules named_modules zero_grad train eval forward
double float requires_grad_ register_buffer register_parameter add_module state_dict append extend
insert keys values items
""".split()
)

F_FUNCTIONS = frozenset(
    """
relu relu6 leaky_relu elu selu celu gelu silu mish softplus softsign sigmoid tanh hardtanh logsigmoid
tanhshrink threshold glu softmax log_softmax softmin normalize linear dropout layer_norm embedding
one_hot binary_cross_entropy binary_cross_entropy_with_logits cross_entropy nll_loss mse_loss l1_loss
smooth_l1_loss huber_loss kl_div cosine_similarity pairwise_distance pad
""".split()
)

INIT_FUNCTIONS = frozenset(
    """
uniform_ normal_ constant_ ones_ zeros_ eye_ xavier_uniform_ xavier_normal_ kaiming_uniform_
kaiming_normal_ trunc_normal_ orthogonal_ calculate_gain
""".split()
)

OPTIMIZERS = frozenset("SGD Adam AdamW RMSprop Adagrad".split())

OPTIMIZER_ATTRIBUTES = frozenset("step zero_grad param_groups".split())

# ----------------------------------------------------------------------------------------- math, random

MATH_REFUSED = frozenset("factorial comb perm".split())  # whole numbers that can take minutes to compute

RANDOM_FUNCTIONS = frozenset(
    "random uniform gauss normalvariate seed randint randrange choice shuffle sample".split()
)


def math_names() -> frozenset[str]:
    """Every public name of the math module but the ones that can take minutes (factorial, comb, perm)."""
    return frozenset(n for n in dir(math) if not n.startswith("_") and n not in MATH_REFUSED)


def torch_attribute(name: str):
    """The object `torch.<name>` stands for in a program, or None when it is not allowed."""
    if name in torch_functions() or name in DTYPE_NAMES:
        return getattr(torch, name)
    if name in ("Tensor", "Size", "Generator"):
        return getattr(torch, name)
    return CONSTANTS.get(name)


def nn_attribute(name: str):
    """The object `torch.nn.<name>` stands for, or None."""
    return getattr(nn, name) if name in NN_CLASSES else None


def functional_attribute(name: str):
    """The object `torch.nn.functional.<name>` stands for, or None."""
    return getattr(F, name) if name in F_FUNCTIONS else None


def is_allowed_module_class(cls) -> bool:
    """True for the nn classes of the allow-list."""
    return isinstance(cls, type) and cls.__name__ in NN_CLASSES and getattr(nn, cls.__name__, None) is cls


def is_optimizer_class(cls) -> bool:
    """True for the optimizers of the allow-list."""
    return (
        isinstance(cls, type)
        and cls.__name__ in OPTIMIZERS
        and getattr(torch.optim, cls.__name__, None) is cls
    )
