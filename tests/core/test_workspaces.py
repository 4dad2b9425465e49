"""The workspace models driven alone, with no widget: state, events, timelines, saving, hostile sessions."""

import json
import os
import time

import pytest
from pydantic import ValidationError

from explorer.core.workspaces import pretrain as pw
from explorer.core.workspaces.expression import ExpressionWorkspace
from explorer.core.workspaces.network import NetworkWorkspace
from explorer.core.workspaces.session import (
    SessionError,
    Workspaces,
    parse_session,
    read_session,
    write_session,
)
from tests.trained import TINY, trained_run

SEED = "x = 1.1\ny = 1.0\nw = param(2.2)\nb = param(0.0)\nz = w * x + b\na = sigmoid(z)\nL = bce(a, y)\n"


def test_expression_workspace_alone_gives_the_seed_numbers_step_by_step():
    ws = ExpressionWorkspace(SEED)
    seen = []
    ws.events.computed.connect(seen.append)
    result = ws.compute_now()
    assert result.ok and seen == [result]
    timeline = ws.timeline
    assert ws.step == timeline.length  # a new program shows its end
    ws.set_step(0)
    assert ws.status().startswith("Ready")
    statuses = []
    for k in range(1, timeline.length + 1):
        ws.set_step(k)
        statuses.append(ws.status())
    text = "\n".join(statuses)
    assert "-0.0898" in text and "-0.0817" in text
    w = next(nid for nid, n in result.trace.nodes.items() if n.name == "w")
    assert not timeline.grad_known(w, timeline.forward_length) and timeline.grad_known(w, timeline.length)


def test_descent_and_backward_again_live_in_the_model():
    ws = ExpressionWorkspace(SEED)
    ws.compute_now()
    ws.state.lr = 1.0
    assert ws.descent_step()
    ws.compute_now("descent")
    assert len(ws.state.losses) == 2 and ws.state.losses[1] < ws.state.losses[0]
    assert ws.state.overrides["w"] == pytest.approx(2.2 + 0.0898263, abs=1e-6)
    history = ws.backward_again()
    assert history["w"][1] == pytest.approx(2 * history["w"][0])
    assert ws.state.backward_again == 1


def test_setting_a_field_emits_its_event():
    ws = ExpressionWorkspace(SEED)
    got = []
    ws.state.events.source.connect(got.append)
    ws.set_source("u = param(3.0)\nv = u * u")
    assert got == ["u = param(3.0)\nv = u * u"]
    with pytest.raises(ValidationError):
        ws.state.lr = -1.0  # validated on assignment too
    assert ws.state.lr > 0


def test_network_workspace_records_and_restores_mid_iteration():
    ws = NetworkWorkspace()
    ws.set_preset("seed")
    ws.state.skip_zero_grad = True
    first = ws.record(iterations=1)
    ws.show(first)
    second = ws.record(iterations=2)
    ws.show(second, step=7)
    assert ws.state.iterations == 2 and ws.state.step == 7
    again = NetworkWorkspace()
    again.load(again.validate(json.loads(json.dumps(ws.to_json()))))
    replay = again.record()
    # the same weights, the same accumulated gradients: replaying the seeded iterations gives the same numbers
    for name, grad in second.grads.items():
        assert replay.grads[name] == pytest.approx(grad)
    assert again.to_json() == ws.to_json()


def test_an_edited_preset_comes_back_as_custom_not_as_the_preset():
    ws = NetworkWorkspace()
    spec = ws.spec()
    spec.lr = 0.5
    ws.set_spec(spec)
    assert ws.state.preset == "custom"
    data = ws.to_json()
    data["preset"] = "seed"  # a file that claims the preset over edited values
    assert NetworkWorkspace.validate(data).preset == "custom"


def test_pretrain_runs_keep_their_files_and_survive_a_new_workspace(tmp_path):
    ws = pw.PretrainWorkspace()
    run = trained_run(ws, 3, 1)
    folder = pw.run_folder(run.run_id)
    assert {p.name for p in folder.iterdir()} >= {"checkpoint.safetensors", "metrics.csv", "run.json"}
    assert "pydoc" in run.name  # a run names its corpus
    saved = json.loads(json.dumps(ws.to_json()))
    other = pw.PretrainWorkspace()
    other.load(other.validate(saved))
    assert other.model_source()["checkpoint"] == run.checkpoint
    assert other.next_run_id() == run.run_id + 1
    written = other.export_run(run.run_id, tmp_path / "export")
    assert {p.suffix for p in written} >= {".csv", ".safetensors"}
    other.delete_run(run.run_id)
    assert not folder.exists() and run.run_id not in other.runs


def _session(**workspaces) -> str:
    return json.dumps({"format": "autograd-explorer-session", "version": 2, "workspaces": workspaces})


def _hostile_sessions(tmp_path):
    """Twenty files a session reader must refuse, each for its own reason."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    ok_runs = {"run_id": 1, "name": "r", "config": TINY, "settings": {}}
    texts = {
        "not json": "{not json",
        "a list": "[]",
        "wrong format": json.dumps({"format": "x", "version": 2}),
        "future version": json.dumps({"format": "autograd-explorer-session", "version": 99}),
        "unknown key": json.dumps({"format": "autograd-explorer-session", "version": 2, "evil": 1}),
        "unknown workspace": _session(terminal={"cmd": "rm -rf /"}),
        "deep nesting": '{"format": "autograd-explorer-session", "workspaces": ' + "[" * 100_000,
        "source not text": _session(expression={"source": 5}),
        "program too long": _session(expression={"source": "x = 1\n" * 20_000}),
        "nan override": _session(expression={"overrides": {"w": float("nan")}}),
        "negative step": _session(expression={"step": -3}),
        "bad param name": _session(expression={"overrides": {"__import__('os')": 1.0}}),
        "spec as list": _session(network={"spec": [1, 2, 3]}),
        "huge layer": _session(network={"spec": {"hidden": [10**9]}}),
        "runs as number": _session(pretrain={"runs": 7}),
        "run config not object": _session(pretrain={"runs": [{**ok_runs, "config": [1]}]}),
        "corpus is /dev/zero": _session(pretrain={"state": {"corpus": "/dev/zero"}}),
        "corpus is a fifo": _session(pretrain={"state": {"corpus": str(fifo)}}),
        "checkpoint outside": _session(pretrain={"runs": [{**ok_runs, "checkpoint": "/dev/zero"}]}),
        "checkpoint is a fifo": _session(pretrain={"runs": [{**ok_runs, "checkpoint": str(fifo)}]}),
    }
    return texts


def test_hostile_sessions_are_refused_fast_and_change_nothing(tmp_path):
    workspaces = Workspaces()
    workspaces.expression.set_source("k = param(0.5)\nm = k * 2.0")
    workspaces.network.set_preset("mlp-50-30-20-3")
    before = json.dumps(workspaces.to_json(), sort_keys=True)
    texts = _hostile_sessions(tmp_path)
    assert len(texts) == 20
    for reason, text in texts.items():
        path = tmp_path / "session.json"
        path.write_text(text)
        start = time.perf_counter()
        with pytest.raises(SessionError) as refused:
            workspaces.apply(read_session(path))
        assert time.perf_counter() - start < 10.0, reason  # a hang, not a speed (a loaded machine)
        message = str(refused.value)
        assert "\n" not in message and "Traceback" not in message, reason
    assert json.dumps(workspaces.to_json(), sort_keys=True) == before


@pytest.mark.timeout(60)
def test_special_files_as_the_session_itself_are_refused(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    big = tmp_path / "big.json"
    with open(big, "wb") as handle:
        handle.truncate(50 * 1024 * 1024)  # 50 MB (sparse)
    for path in ("/dev/zero", fifo, big, tmp_path):
        start = time.perf_counter()
        with pytest.raises(SessionError):
            read_session(path)
        assert time.perf_counter() - start < 10.0  # a read of /dev/zero or a fifo would never end


def test_session_round_trip_of_all_three_workspaces(tmp_path):
    workspaces = Workspaces()
    workspaces.expression.set_source(SEED)
    workspaces.expression.compute_now()
    workspaces.expression.set_step(5)
    network = workspaces.network
    spec = network.spec()
    spec.hidden = [7]
    network.set_spec(spec)
    network.show(network.record(iterations=2), step=4)
    trained_run(workspaces.pretrain, 2, 1)
    trained_run(workspaces.pretrain, 2, 2)
    workspaces.current = "network"
    path = write_session(tmp_path / "s.json", workspaces)
    restored = Workspaces()
    restored.apply(read_session(path))
    assert restored.to_json() == workspaces.to_json()
    assert sorted(restored.pretrain.runs) == sorted(workspaces.pretrain.runs)
    assert restored.current == "network"


def test_a_kill_between_truncate_and_write_cannot_happen_writes_are_atomic(tmp_path):
    path = tmp_path / "s.json"
    workspaces = Workspaces()
    write_session(path, workspaces)
    first = path.read_text()
    write_session(path, workspaces)
    assert path.read_text() == first
    assert [p.name for p in tmp_path.iterdir()] == ["s.json"]  # no temporary file left beside it
    assert parse_session(first).format == "autograd-explorer-session"


def test_a_session_with_many_runs_overlays_only_the_newest_few():
    """Issue 14: 1,000 runs load fast: only the newest MAX_SHOWN_RUNS are drawn, the rest are listed."""
    from explorer.core.gpt.model import GPTConfig
    from explorer.core.gpt.train import TrainSettings
    from explorer.core.workspaces.pretrain import MAX_SHOWN_RUNS, PretrainWorkspace

    ws = PretrainWorkspace()
    for _ in range(MAX_SHOWN_RUNS + 8):
        ws.new_run(GPTConfig().to_dict(), TrainSettings().to_dict(), None)
    ws.runs[3].visible = False  # the user's own choice stays
    again = PretrainWorkspace()
    again.load(PretrainWorkspace.validate(ws.to_json()))
    shown = [run_id for run_id, run in again.runs.items() if run.visible]
    assert len(again.runs) == MAX_SHOWN_RUNS + 8
    assert shown == sorted(again.runs)[-MAX_SHOWN_RUNS:]


def test_a_result_prepared_elsewhere_is_applied_only_for_its_own_state():
    # A lesson step traces on a copy first (the Worker); the window's workspace then applies those
    # results where the state matches and computes anything else itself.
    copy = ExpressionWorkspace("w = param(2.0)\nL = w * w")
    made = [(copy.computation_key(), copy.compute_now())]
    ws = ExpressionWorkspace("w = param(2.0)\nL = w * w")
    with ws.answered_from(made):
        first = ws.compute_now()
        ws.set_source("w = param(3.0)\nL = w * w")  # not prepared: computed here
        second = ws.compute_now()
    assert first is made[0][1] and ws.result is second and second is not first
    assert ws.state.losses == [9.0]
    ws.set_source("w = param(2.0)\nL = w * w")
    assert ws.compute_now() is not made[0][1]  # outside the block nothing prepared is used
