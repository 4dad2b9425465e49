"""Issue 14: hostile files and special paths. Every case is refused with the product's own one-line error."""

import json
import os
import struct
import time

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from explorer.cli import UserInputError, main
from explorer.commands.train import read_config_file
from explorer.core.gpt import budget
from explorer.core.gpt import checkpoint as ckpt_io
from explorer.core.gpt.checkpoint import CheckpointError, read_checkpoint
from explorer.core.gpt.data import CorpusError, default_corpus, load_corpus
from explorer.core.gpt.model import GPTConfig
from explorer.core.gpt.train import Trainer, TrainSettings

CORPUS = default_corpus()[:30_000]
TINY = ["--n-layers", "1", "--emb-dim", "16", "--n-heads", "2", "--context-length", "8", "--batch-size", "2",
        "--eval-every", "0", "--sample-every", "0", "--threads", "1"]


def run_cli(argv, capsys) -> tuple[int, str, str]:
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def refused(argv, capsys, *needles) -> str:
    """The command exits 2 with exactly one line on stderr that contains every needle."""
    code, _, err = run_cli(argv, capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "pipe"
    os.mkfifo(path)
    return str(path)


@pytest.fixture(scope="module")
def trained():
    cfg = GPTConfig(vocab_size=128, context_length=8, emb_dim=16, n_heads=2, n_layers=1, drop_rate=0.0)
    trainer = Trainer(cfg, TrainSettings(steps=2, batch_size=2, warmup_steps=1, eval_every=0, sample_every=0),
                      corpus=CORPUS)
    list(trainer.run())
    return trainer


@pytest.fixture(scope="module")
def ckpt_bytes(trained, tmp_path_factory):
    return trained.save_checkpoint(tmp_path_factory.mktemp("ck") / "ck.safetensors").read_bytes()


def split(raw: bytes) -> tuple[dict, dict]:
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    return header, json.loads(header["__metadata__"]["meta"])


def with_meta(raw: bytes, edit) -> bytes:
    """The checkpoint with its JSON metadata changed by `edit(meta)` (tensors untouched)."""
    (n,) = struct.unpack("<Q", raw[:8])
    header, meta = split(raw)
    edit(meta)
    header["__metadata__"]["meta"] = json.dumps(meta)
    blob = json.dumps(header).encode()
    blob += b" " * (-len(blob) % 8)
    return struct.pack("<Q", len(blob)) + blob + raw[8 + n:]


def with_tensors(raw: bytes, edit) -> bytes:
    """The checkpoint with its tensors changed by `edit(tensors)` (metadata untouched)."""
    header, _ = split(raw)
    tensors = st_load(raw)
    edit(tensors)
    return st_save(tensors, metadata=header["__metadata__"])


# --- 1. special files: never hang, never read without limit ------------------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize("flag", ["--corpus", "--config", "--resume"])
@pytest.mark.parametrize("special", ["fifo", "/dev/zero"])
def test_train_refuses_fifo_and_dev_zero_at_once(capsys, fifo, flag, special):
    path = fifo if special == "fifo" else special
    refused(["train", flag, path, *TINY], capsys, "not a regular file")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("command", ["grad", "graph"])
@pytest.mark.parametrize("special", ["fifo", "/dev/zero"])
def test_program_file_fifo_and_dev_zero(capsys, fifo, command, special):
    refused([command, fifo if special == "fifo" else special], capsys, "not a regular file")


@pytest.mark.timeout(60)
def test_corpus_problem_never_opens_a_fifo(fifo):
    # budget.corpus_problem runs on the GUI thread: a FIFO with no writer would block an open() forever
    assert "not a regular file" in budget.corpus_problem(fifo)
    assert "not a regular file" in budget.corpus_problem("/dev/zero")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("special", ["fifo", "/dev/zero"])
def test_checkpoint_naming_a_special_corpus_is_refused(capsys, tmp_path, fifo, ckpt_bytes, special):
    path = tmp_path / "run" / "ck.safetensors"
    path.parent.mkdir()
    target = fifo if special == "fifo" else special
    path.write_bytes(with_meta(ckpt_bytes, lambda m: m["settings"].update(corpus_path=target)))
    refused(["train", "--resume", str(path), "--steps", "3", "--out", str(tmp_path / "next")], capsys,
            "not a regular file")


# --- 2. every genuine checkpoint is accepted ---------------------------------------------------------------


def test_a_genuine_checkpoint_whose_header_length_starts_with_0x80_loads(trained, tmp_path):
    """The header length's low byte is the file's first byte: 0x80 is a pickle's protocol byte too."""
    base = dict(config=trained.config, settings=trained.settings.to_dict(),
                tokenizer=trained.tokenizer.to_dict(), step=trained.step, tokens=trained.tokens,
                model=trained.model, optimizer=trained.optimizer,
                rng={"torch": torch.get_rng_state()})
    path = tmp_path / "ck.safetensors"
    for pad in range(0, 400):  # the writer pads the header to a multiple of 8: one pad in 32 gives 0x80
        ckpt_io.write_checkpoint(path, **base, extra={"note": "x" * pad})
        raw = path.read_bytes()
        if raw[0] == 0x80:
            break
    # a header length of 128 + 256 k: its first bytes look like a pickle's (0x80, protocol)
    assert raw[0] == 0x80 and raw[1] != 0
    ck = read_checkpoint(path)
    assert ck.step == trained.step and ck.extra["note"] == "x" * pad


def test_pickles_and_zips_are_still_recognised(tmp_path):
    import pickle

    for name, blob in (("p2", pickle.dumps([1], protocol=2)), ("p5", pickle.dumps([1], protocol=5)),
                       ("zip", b"PK\x03\x04" + b"\0" * 64)):
        path = tmp_path / name
        path.write_bytes(blob)
        with pytest.raises(CheckpointError, match="pickle"):
            read_checkpoint(path)


# --- 6. edited checkpoints are not trusted -----------------------------------------------------------------


def _set(path, value):
    def edit(meta):
        where = meta
        for key in path[:-1]:
            where = where[key]
        where[path[-1]] = value
    return edit


EDITS = {
    "negative step": (_set(["step"], -100), "step must be a whole number >= 0"),
    "step as text": (_set(["step"], "5"), "step must be"),
    "tokens as bool": (_set(["tokens"], True), "tokens must be"),
    "100,000 layers": (_set(["config", "n_layers"], 100_000), "layers"),
    "2 layers for 1": (_set(["config", "n_layers"], 2), "2 layers in the config, 1 in the tensors"),
    "param_groups as number": (_set(["optimizer", "param_groups"], 7), "malformed optimizer state"),
    "param_groups of lists": (_set(["optimizer", "param_groups"], [[], []]), "malformed optimizer state"),
    "param_groups one group": (lambda m: m["optimizer"]["param_groups"].pop(), "malformed optimizer state"),
    "params shuffled": (lambda m: m["optimizer"]["param_groups"][0]["params"].reverse(), "do not match"),
    "lr as text": (lambda m: m["optimizer"]["param_groups"][0].update(lr="big"), "lr must be"),
    "betas odd": (lambda m: m["optimizer"]["param_groups"][0].update(betas=[1, 2, 3]), "betas"),
    "nested group value": (lambda m: m["optimizer"]["param_groups"][0].update(eps={"a": []}), "eps"),
    "scalars as number": (_set(["optimizer", "scalars"], 3), "scalars"),
    "scalars bad index": (_set(["optimizer", "scalars"], {"x": {"step": 1}}), "scalars"),
    "scalars bad value": (_set(["optimizer", "scalars"], {"0": {"step": [1]}}), "scalar"),
    "settings as list": (_set(["settings"], [1]), "settings must be a JSON dict"),
    "history of numbers": (_set(["history"], [1, 2]), "history"),
    "config as list": (_set(["config"], []), "invalid model config"),
    "config unknown field": (lambda m: m["config"].update(wings=2), "invalid model config"),
    "huge vocab": (_set(["config", "vocab_size"], 10**12), "does not match its config"),
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", list(EDITS))
def test_edited_metadata_is_refused_quickly(ckpt_bytes, tmp_path, case):
    edit, message = EDITS[case]
    path = tmp_path / "edited.safetensors"
    path.write_bytes(with_meta(ckpt_bytes, edit))
    began = time.perf_counter()
    with pytest.raises(CheckpointError, match=message):
        read_checkpoint(path)
    assert time.perf_counter() - began < 5  # the 100,000-layer claim took 90 s and 3 GB before


def _retype(name, dtype):
    return lambda t: t.update({name: t[name].to(dtype)})


TENSOR_EDITS = {
    "float16 weights": (_retype("model/tok_emb.weight", torch.float16), "F16"),
    "float64 weights": (_retype("model/tok_emb.weight", torch.float64), "F64"),
    "optimizer state of another shape": (lambda t: t.update({"optim/0/exp_avg": torch.zeros(3, 3)}),
                                         "optim/0/exp_avg has shape"),
    "rng of another dtype": (_retype("rng/torch", torch.int64), "rng/torch is I64"),
    "rng of two dimensions": (lambda t: t.update({"rng/torch": torch.zeros(2, 2, dtype=torch.uint8)}),
                              "one-dimensional"),
    "unknown tensor": (lambda t: t.update({"evil/x": torch.zeros(1)}), "unexpected tensors"),
    "missing weight": (lambda t: t.pop("model/tok_emb.weight"), "missing tensors"),
}


@pytest.mark.parametrize("case", list(TENSOR_EDITS))
def test_edited_tensors_are_refused(ckpt_bytes, tmp_path, case):
    edit, message = TENSOR_EDITS[case]
    path = tmp_path / "edited.safetensors"
    path.write_bytes(with_tensors(ckpt_bytes, edit))
    with pytest.raises(CheckpointError, match=message):
        read_checkpoint(path)


def test_edited_checkpoint_through_the_cli_is_one_line(capsys, ckpt_bytes, tmp_path):
    path = tmp_path / "edited.safetensors"
    path.write_bytes(with_meta(ckpt_bytes, _set(["optimizer", "scalars"], 3)))
    refused(["train", "--resume", str(path)], capsys, "malformed optimizer state")


# --- 4. --out is checked before step 1; resume never overwrites ------------------------------------------


@pytest.mark.timeout(60)
def test_unwritable_out_is_found_before_training(capsys, tmp_path):
    blocker = tmp_path / "plain-file"
    blocker.write_text("x")
    code, out, err = run_cli(["train", "--steps", "2", "--out", str(blocker / "run"), *TINY], capsys)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and "--out" in err
    refused(["train", "--steps", "2", "--out", str(blocker), *TINY], capsys, "not a folder")


@pytest.mark.timeout(120)
def test_out_is_created_and_cleared_of_stale_temporaries(capsys, tmp_path):
    out_dir = tmp_path / "a" / "b"
    out_dir.mkdir(parents=True)
    (out_dir / ".checkpoint.safetensors.tmp-999").write_bytes(b"x" * 1000)
    (out_dir / ".explorer-tmp-zzz").write_bytes(b"x")
    code, _, err = run_cli(["train", "--steps", "2", "--out", str(out_dir), *TINY], capsys)
    assert code == 0, err
    assert sorted(p.name for p in out_dir.iterdir()) == ["checkpoint.safetensors", "histograms.safetensors",
                                                     "metrics.csv"]


# --- 5. one-line errors instead of tracebacks ------------------------------------------------------------


@pytest.mark.parametrize("argv, needle", [
    (["--seed", "18446744073709551616"], "seed must be"),
    (["--seed", "-1"], "seed must be"),
    (["--device", "cuda:x"], "device must be"),
    (["--device", "cpu:0:0"], "device must be"),
])
def test_bad_flags_are_one_line(capsys, argv, needle):
    refused(["train", "--steps", "1", *argv, *TINY], capsys, needle)


@pytest.mark.parametrize("content, needle", [
    ("[1, 2]", "must hold a JSON object"),
    ('{"config": [1]}', '"config" must hold a JSON object'),
    ('{"settings": "x"}', '"settings" must hold a JSON object'),
    ('{"seed": 18446744073709551616}', "seed must be"),
    ('{"device": 3}', "device must be"),
    ('{"out_dir": 5}', "out_dir must be a path"),
    ('{"vocab_size": [1]}', "vocab_size must be a whole number"),
    ("[" * 100_000 + "]" * 100_000, "not valid JSON"),
    ('{"\\ud800": 1}', "unknown fields"),
    ("\ufeff\ufeff{}", "not valid JSON"),  # one mark is fine, two are not
])
def test_hostile_config_files_are_one_line(capsys, tmp_path, content, needle):
    path = tmp_path / "c.json"
    path.write_text(content, encoding="utf-8")
    refused(["train", "--config", str(path), "--steps", "1", *TINY], capsys, needle)


def test_a_param_with_no_elements_reports(capsys):
    code, out, err = run_cli(["grad", "-e", "x = param(randn(0)); L = sum(x)"], capsys)
    assert code == 0 and "Traceback" not in err and "dL/dx = shape (0,)" in out
    code, out, err = run_cli(["grad", "--json", "-e", "x = param(randn(0)); L = sum(x)"], capsys)
    assert code == 0 and json.loads(out)["grads"]["x"] == []


# --- fuzz: structured garbage gets the product's own error only ----------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=True)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
FIELDS = ["seed", "device", "n_layers", "emb_dim", "lr", "steps", "config", "settings", "corpus_path",
          "tokenizer", "drop_rate", "out_dir"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=6), JSON, max_size=5) | JSON)
def test_fuzz_config_reader(tmp_path, data):
    from explorer.commands.train import build

    path = tmp_path / "fuzz.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    try:
        read_config_file(str(path))

        class Args:
            config = str(path)
            preset = None

        build(Args())
    except UserInputError:
        pass


META_KEYS = ["config", "settings", "tokenizer", "step", "tokens", "optimizer", "history", "extra"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.sampled_from(META_KEYS), inner=st.sampled_from([None, "n_layers", "param_groups", "scalars",
                                                                "chars", "lr"]), value=JSON)
def test_fuzz_checkpoint_metadata(ckpt_bytes, tmp_path, key, inner, value):
    def edit(meta):
        if inner and isinstance(meta.get(key), dict):
            meta[key][inner] = value
        else:
            meta[key] = value

    path = tmp_path / "fuzz.safetensors"
    path.write_bytes(with_meta(ckpt_bytes, edit))
    try:
        ck = read_checkpoint(path)
        Trainer.load_checkpoint(path, corpus=CORPUS) if ck.step <= 10 else None
    except (CheckpointError, CorpusError):  # an edited tokenizer may make the corpus too short: own error
        pass


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(blob=st.binary(max_size=3000)
       | st.text(max_size=3000).map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_fuzz_corpus_reader(tmp_path, blob):
    path = tmp_path / "corpus.txt"
    path.write_bytes(blob)
    try:
        load_corpus(path, min_chars=10)
    except CorpusError:
        pass
    assert budget.corpus_problem(str(path)) is None or isinstance(budget.corpus_problem(str(path)), str)


def _session_skeleton() -> dict:
    """A valid session of all three workspaces, with one toy run and one pretraining run record."""
    from explorer.core.workspaces.session import Workspaces

    ws = Workspaces()
    ws.network.start_run(3)
    ws.network.add_records([{"step": 1, "loss": 0.5, "accuracy": 0.5}])
    ws.network.finish_run("done")
    ws.pretrain.new_run(GPTConfig().to_dict(), TrainSettings().to_dict(), None)
    return ws.to_json()


SKELETON = None
ODD_TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=12) | st.sampled_from(
    ["\u202e", "\x00", "\ud7ff", "𝔘𝔫𝔦", "../../etc/passwd", "/dev/zero", "1e999", "NaN", "-0"])
GARBAGE = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**80), 2**80) | st.floats(allow_nan=True, allow_infinity=True)
    | ODD_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ODD_TEXT, inner, max_size=4),
    max_leaves=25,
)


def _paths(node, prefix=()):
    """Every path into a JSON tree (dict keys and list indices)."""
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _paths(value, (*prefix, i))


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzz_session_reader_applies_all_or_nothing(tmp_path, data):
    """Structured garbage anywhere in a valid session: SessionError, or a session that applies whole."""
    import copy

    from explorer.core.workspaces.session import SessionError, Workspaces, parse_session, read_session

    global SKELETON
    if SKELETON is None:
        SKELETON = _session_skeleton()
    doc = copy.deepcopy(SKELETON)
    paths = [p for p in _paths(doc) if p]
    where = data.draw(st.sampled_from(paths))
    value = data.draw(GARBAGE | st.integers(1, 2000).map(lambda d: {"__nest__": d}))
    parent = doc
    for part in where[:-1]:
        parent = parent[part]
    parent[where[-1]] = value
    text = json.dumps(doc)
    if isinstance(value, dict) and "__nest__" in value:  # deep nesting, as raw text
        text = text.replace(json.dumps(value), _nested(value["__nest__"]))
    path = tmp_path / "fuzz.json"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    ws = Workspaces()
    before = ws.to_json()
    try:
        session = read_session(path)
    except SessionError as exc:
        assert "\n" not in str(exc) and str(exc)
        assert ws.to_json() == before
        return
    ws.apply(session)  # a validated session applies without an error
    ws.expression.compute_now()
    assert parse_session(json.dumps(ws.to_json())) is not None  # and saves back to a valid session


def test_session_reader_survives_100k_deep_nesting_and_huge_numbers(tmp_path):
    from explorer.core.workspaces.session import SessionError, read_session

    for text in (_nested(100_000), '{"format": ' + _nested(100_000) + "}",
                 '{"format": "autograd-explorer-session", "version": ' + "9" * 5000 + "}",
                 '{"format": "autograd-explorer-session", "version": 2, "workspaces": {"network": '
                 '{"spec": {"lr": 1e999}}}}'):
        path = tmp_path / "s.json"
        path.write_text(text, encoding="utf-8")
        start = time.perf_counter()
        with pytest.raises(SessionError):
            read_session(path)
        assert time.perf_counter() - start < 5  # generous: a hang would be caught here, not a speed check


def test_a_field_name_with_a_line_break_gives_a_one_line_error(tmp_path):
    """Found by the session fuzz: an unknown key "\\n" made the error two lines."""
    from explorer.core.workspaces.session import SessionError, read_session

    path = tmp_path / "s.json"
    path.write_text('{"format": "autograd-explorer-session", "version": 2, "current": "expression", '
                    '"workspaces": {"\\n": null, "": 1}}', encoding="utf-8")
    with pytest.raises(SessionError) as caught:
        read_session(path)
    text = str(caught.value)
    assert "\n" not in text and '"\\n"' in text, text
