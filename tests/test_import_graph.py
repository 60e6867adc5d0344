"""Dependencies between speechjax's subpackages point one way (docs/design.md, "Module map").

Every `import` of a speechjax module, at module level or inside a function, is read from the source; a
subpackage may import only the ranks below its own, except the documented exceptions in ALLOWED."""
import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1] / "speechjax"

# bottom → top; one rank may hold several subpackages, which then must not import each other
RANKS = (
    ("config",),
    ("text", "text_tokenizer", "audio"),
    ("data", "parallel"),
    ("nn",),
    ("models",),
    ("tasks",),
    ("__init__",),          # `speechjax.load`: a facade over tasks.pretrained.load_model
    ("train",),
    ("interop", "cluster"),
    ("eval",),
    ("launch",),
    ("cli",),
)
RANK = {name: i for i, names in enumerate(RANKS) for name in names}

# (importer subpackage, imported module): why it is allowed
ALLOWED = {
    ("tasks", "train.optim"): "the optimizer factory is a leaf (imports no speechjax module): tasks own "
                              "their optimizers (the codec GAN has two)",
    ("tasks", "train.checkpoint"): "checkpoint reading is a leaf (imports no speechjax module): warm starts "
                                   "read pretrained params",
}
LEAVES = ("train.optim", "train.checkpoint")


def _imports(path: pathlib.Path):
  """(imported module relative to speechjax, e.g. "train.optim" or "__init__", line) of one file."""
  for node in ast.walk(ast.parse(path.read_text(), str(path))):
    if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "speechjax":
      for alias in node.names:
        yield ".".join(f"{node.module}.{alias.name}".split(".")[1:]) or "__init__", node.lineno
    elif isinstance(node, ast.Import):
      for alias in node.names:
        if alias.name.split(".")[0] == "speechjax":
          yield ".".join(alias.name.split(".")[1:]) or "__init__", node.lineno


def _subpackage(module: str) -> str:
  head = module.split(".")[0]
  return head if (ROOT / head).is_dir() or (ROOT / f"{head}.py").exists() else "__init__"


def _modules():
  for path in sorted(ROOT.rglob("*.py")):
    relative = path.relative_to(ROOT).with_suffix("")
    name = ".".join(relative.parts)
    yield name, _subpackage(name) if len(relative.parts) > 1 or name != "__init__" else "__init__", path


def test_every_subpackage_has_a_rank():
  missing = {sub for _, sub, _ in _modules()} - set(RANK)
  assert not missing, f"add {sorted(missing)} to RANKS"


def test_imports_point_down():
  upward = []
  for name, sub, path in _modules():
    for target, line in _imports(path):
      target_sub = _subpackage(target)
      if target_sub == sub:
        continue
      module = ".".join(target.split(".")[:2])
      if (sub, module) in ALLOWED:
        continue
      if RANK[target_sub] >= RANK[sub]:
        upward.append(f"{path.relative_to(ROOT.parent)}:{line} ({sub}) imports speechjax.{target}")
  assert not upward, "upward or sideways imports:\n" + "\n".join(upward)


def test_allowed_exceptions_are_leaves():
  for leaf in LEAVES:
    path = ROOT / (leaf.replace(".", "/") + ".py")
    above = [t for t, _ in _imports(path) if RANK[_subpackage(t)] > RANK["parallel"]]
    assert not above, f"speechjax.{leaf} is allowed below tasks as a leaf but imports {above}"
