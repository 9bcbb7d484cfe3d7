"""Check the pack inside a real ComfyUI: import, node specs, the example workflows run, the frontend loads them.

    COMFYUI_DIR=/path/to/ComfyUI python scripts/comfy_host_check.py [--python PY] [--browser /usr/bin/chromium]

Run it with ComfyUI's own Python (``--python`` starts ComfyUI with another one). Nothing in the
ComfyUI checkout is changed: everything happens in a temporary base directory —

* ``custom_nodes/ComfyUI-InverseDVS`` links to this pack; ``input/`` gets the pack's sample clip and its
  depth video; tiny model folders of the real layouts are saved and given to ComfyUI through an
  ``extra_model_paths.yaml``;
* ComfyUI starts on 127.0.0.1 (``--cpu``) with ``--base-directory`` pointing there;
* checks: no import error for the pack in the log; ``/object_info`` lists every pack node with the
  inputs and outputs of its class, and the core nodes the workflows use as ``make_workflows.py``
  describes them; the pack's workflows are served as templates; the geometry workflow (API twin)
  queued with ``POST /prompt`` finishes and writes its videos; the full workflow finishes with the tiny
  models (at a small size and few steps, so it takes seconds on a CPU);
* with a browser: every UI workflow loaded into ComfyUI's own frontend in headless Chromium has no
  missing node type, keeps every widget value, converts to exactly its API twin, and a screenshot of
  each is written to ``docs/`` (``--screenshots DIR`` to put them elsewhere).

Exit status 0 when every check passed; each check prints one line.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_workflows as mw  # noqa: E402
from pack import PACK_ROOT, load_pack  # noqa: E402

PACK_FOLDER = "ComfyUI-InverseDVS"
TINY_VIDEO_MODEL = "tiny-cogvideox-i2v"  # folder name of the tiny video model (random weights)
TINY_DEPTH_MODEL = "tiny-depth-anything"
DEPTH_KIND = "inversedvs_depth"
START_TIMEOUT_S = 240
RUN_TIMEOUT_S = 600
BROWSER_TIMEOUT_S = 90
VIEWPORT = mw.VIEW_SIZE
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars")
# The frontend's settings for the check: no first-run template dialog, no minimap, text drawn at any zoom.
FRONTEND_SETTINGS = {"Comfy.TutorialCompleted": True, "Comfy.Minimap.Visible": False,
                     "LiteGraph.Canvas.LowQualityRenderingZoomThreshold": 0.1}
# Smaller work for the full workflow with tiny models: (node type, input) → value, where the input exists.
FULL_RUN_OVERRIDES = {
    ("InverseDVS_LoadVideo", "frame_load_cap"): 9,
    ("InverseDVS_LoadVideo", "width"): 96,
    ("InverseDVS_LoadVideo", "height"): 64,
    ("InverseDVS_CameraTrajectory", "frames"): 9,
    ("InverseDVS_KRNRInvert", "steps"): 4,
    ("InverseDVS_Sample", "steps"): 4,
    ("InverseDVS_DepthEstimate", "model"): TINY_DEPTH_MODEL,
    ("InverseDVS_DepthEstimate", "input_size"): 56,
    ("InverseDVS_LoadVideoModel", "model_folder"): TINY_VIDEO_MODEL,
    ("InverseDVS_LoadVideoModel", "dtype"): "fp32",
    ("InverseDVS_LoadVideoModel", "compile_transformer"): False,
}
# Choice lists that come from the user's folders: compared by content the check put there.
FOLDER_CHOICES = {
    ("InverseDVS_LoadVideoModel", "model_folder"): (TINY_VIDEO_MODEL,),
    ("InverseDVS_DepthEstimate", "model"): (TINY_DEPTH_MODEL,),
    ("InverseDVS_LoadVideo", "video"): (mw.SAMPLE_VIDEO, mw.SAMPLE_DEPTH_VIDEO),
}


class CheckFailed(Exception):
    pass


def report(ok: bool, what: str, detail: str = "") -> bool:
    print(f"[{'ok' if ok else 'FAIL'}] {what}" + (f": {detail}" if detail else ""), flush=True)
    return ok


# ---------------------------------------------------------------------------- the temporary base directory


def make_sample_inputs(input_dir: str) -> list[str]:
    """The pack's sample clip and its depth video, as ComfyUI's input files."""
    pack = load_pack()
    from importlib import import_module

    sample = import_module(pack.__name__ + ".warp.sample")
    return sample.write_sample_videos(input_dir, mw.SAMPLE_VIDEO, mw.SAMPLE_DEPTH_VIDEO)


def make_tiny_models(root: str) -> list[str]:
    """Tiny random-weight model folders of the real layouts under ``root/<kind>/``; returns the kinds."""
    import make_tiny_models as tiny

    pack = load_pack()
    from importlib import import_module

    tiny.main([root, "--name", TINY_VIDEO_MODEL])
    tiny_depth = import_module(pack.__name__ + ".warp.tiny_depth")
    tiny_depth.save_tiny_depth_model(os.path.join(root, DEPTH_KIND), TINY_DEPTH_MODEL)
    return sorted(kind for kind in os.listdir(root) if os.path.isdir(os.path.join(root, kind)))


def prepare_base(base: str) -> str:
    """Fill the temporary base directory; returns the extra_model_paths.yaml path."""
    os.makedirs(os.path.join(base, "custom_nodes"))
    os.symlink(PACK_ROOT, os.path.join(base, "custom_nodes", PACK_FOLDER), target_is_directory=True)
    for sub in ("input", "output", "temp", "models", os.path.join("user", "default")):
        os.makedirs(os.path.join(base, sub), exist_ok=True)
    with open(os.path.join(base, "user", "default", "comfy.settings.json"), "w") as f:
        json.dump(FRONTEND_SETTINGS, f)
    make_sample_inputs(os.path.join(base, "input"))
    tiny_root = os.path.join(base, "tiny_models")
    kinds = make_tiny_models(tiny_root)
    yaml_path = os.path.join(base, "extra_model_paths.yaml")
    with open(yaml_path, "w") as f:
        f.write("inversedvs_tiny:\n")
        f.write(f"    base_path: {tiny_root}\n")
        for kind in kinds:
            f.write(f"    {kind}: {kind}\n")
    return yaml_path


# ---------------------------------------------------------------------------- ComfyUI over HTTP


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, comfyui: str, python: str, base: str, yaml_path: str, port: int):
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = os.path.join(base, "comfyui.log")
        cmd = [python, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port),
               "--base-directory", base, "--extra-model-paths-config", yaml_path, "--disable-auto-launch",
               "--database-url", "sqlite:///:memory:"]
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, cwd=comfyui, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def log(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def get(self, path: str):
        with urllib.request.urlopen(self.url + path, timeout=30) as r:
            return json.loads(r.read())

    def post(self, path: str, data: dict):
        req = urllib.request.Request(self.url + path, data=json.dumps(data).encode(),
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            raise CheckFailed(f"POST {path}: HTTP {e.code}: {e.read().decode(errors='replace')[:2000]}")

    def wait_ready(self) -> None:
        deadline = time.time() + START_TIMEOUT_S
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise CheckFailed(f"ComfyUI exited with {self.proc.returncode}; log:\n{self.log()[-4000:]}")
            try:
                self.get("/system_stats")
                return
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.5)
        raise CheckFailed(f"ComfyUI did not answer within {START_TIMEOUT_S} s")

    def run_prompt(self, prompt: dict, timeout: float = RUN_TIMEOUT_S) -> dict:
        """Queue an API-format prompt and wait for its history entry (raises on an execution error)."""
        answer = self.post("/prompt", {"prompt": prompt, "client_id": "inversedvs-host-check"})
        if answer.get("node_errors"):
            raise CheckFailed(f"prompt rejected: {json.dumps(answer['node_errors'])[:2000]}")
        prompt_id = answer["prompt_id"]
        deadline = time.time() + timeout
        while time.time() < deadline:
            history = self.get(f"/history/{prompt_id}")
            entry = history.get(prompt_id)
            if entry and entry.get("status", {}).get("completed") is not None and (
                    entry["status"].get("status_str") in ("success", "error")):
                if entry["status"]["status_str"] != "success":
                    errors = [m[1] for m in entry["status"].get("messages", []) if m[0] == "execution_error"]
                    detail = "; ".join(f"{e.get('node_type')}: {e.get('exception_message', '').strip()}"
                                       for e in errors)
                    raise CheckFailed(f"execution failed: {detail or entry['status']}")
                return entry
            if self.proc.poll() is not None:
                raise CheckFailed(f"ComfyUI exited while running; log:\n{self.log()[-4000:]}")
            time.sleep(0.5)
        raise CheckFailed(f"the prompt did not finish within {timeout:.0f} s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()


# ---------------------------------------------------------------------------- checks


def check_import_log(server: Server) -> None:
    log = server.log()
    bad = [line for line in log.splitlines()
           if PACK_FOLDER in line and ("IMPORT FAILED" in line or "Cannot import" in line)]
    if bad or f"custom_nodes/{PACK_FOLDER}" not in log:
        raise CheckFailed("the pack did not import:\n" + "\n".join(bad or [log[-3000:]]))


def _normalise(value):
    return json.loads(json.dumps(value))


def check_object_info(server: Server) -> int:
    """Every pack node as its class says; the allowed core nodes as CORE_NODES says. Returns the node count."""
    pack = load_pack()
    info = server.get("/object_info")
    problems = []
    for node_type, cls in pack.NODE_CLASS_MAPPINGS.items():
        entry = info.get(node_type)
        if entry is None:
            problems.append(f"{node_type} missing")
            continue
        expected = _normalise(cls.INPUT_TYPES())
        for section in ("required", "optional"):
            got_inputs = entry["input"].get(section, {})
            want_inputs = expected.get(section, {})
            if list(got_inputs) != list(want_inputs):
                problems.append(f"{node_type}.{section}: inputs {list(got_inputs)} != {list(want_inputs)}")
                continue
            for name, want in want_inputs.items():
                got = got_inputs[name]
                folder = FOLDER_CHOICES.get((node_type, name))
                if folder is not None:
                    missing = [c for c in folder if c not in got[0]]
                    if missing:
                        problems.append(f"{node_type}.{name}: ComfyUI does not list {missing} (has {got[0]})")
                    got, want = [None] + got[1:], [None] + want[1:]
                if got != want:
                    problems.append(f"{node_type}.{name}: {json.dumps(got)[:300]} != {json.dumps(want)[:300]}")
        outputs = list(cls.RETURN_TYPES)
        names = list(getattr(cls, "RETURN_NAMES", outputs))
        if entry["output"] != outputs or entry["output_name"] != names:
            problems.append(f"{node_type}: outputs {entry['output']}/{entry['output_name']} != {outputs}/{names}")
        if entry["display_name"] != pack.NODE_DISPLAY_NAME_MAPPINGS[node_type]:
            problems.append(f"{node_type}: display name {entry['display_name']!r}")
    for node_type, spec in mw.CORE_NODES.items():
        entry = info.get(node_type)
        if entry is None:
            problems.append(f"core node {node_type} missing")
            continue
        core = mw.spec_from_input_types(node_type, "", entry["input"], entry["output"], entry["output_name"])
        mine = mw.spec_from_input_types(node_type, "", spec["input"], spec["output"], spec["output_name"])
        for a, b in zip(core.inputs, mine.inputs):
            keys = set(b.options) & {"default", "min", "max", "step"}
            if (a.name, a.type, a.required, a.choices) != (b.name, b.type, b.required, b.choices) or any(
                    a.options.get(k) != b.options.get(k) for k in keys):
                problems.append(f"core {node_type}.{b.name}: ComfyUI has {a}, make_workflows has {b}")
        if len(core.inputs) != len(mine.inputs) or core.outputs != mine.outputs:
            problems.append(f"core {node_type}: inputs/outputs differ from make_workflows.CORE_NODES")
    if problems:
        raise CheckFailed("\n  ".join(problems))
    return len(pack.NODE_CLASS_MAPPINGS)


def check_templates(server: Server, names: list[str]) -> None:
    served = server.get("/api/workflow_templates").get(PACK_FOLDER, [])
    missing = sorted(set(names) - set(served))
    if missing:
        raise CheckFailed(f"not served as templates: {missing} (served: {served})")
    for name in names:
        with open(os.path.join(mw.WORKFLOW_DIR, name + ".json"), encoding="utf-8") as f:
            if server.get(f"/api/workflow_templates/{PACK_FOLDER}/{name}.json") != json.load(f):
                raise CheckFailed(f"the served template {name}.json differs from the file")
        with urllib.request.urlopen(f"{server.url}/api/workflow_templates/{PACK_FOLDER}/{name}.jpg", timeout=30) as r:
            if r.read(3) != b"\xff\xd8\xff":
                raise CheckFailed(f"the thumbnail {name}.jpg is not served as a JPEG")


def load_api(name: str) -> dict:
    with open(os.path.join(mw.API_DIR, name + ".json"), encoding="utf-8") as f:
        return json.load(f)


def apply_overrides(prompt: dict, overrides: dict) -> dict:
    prompt = json.loads(json.dumps(prompt))
    for node in prompt.values():
        for (node_type, name), value in overrides.items():
            if node["class_type"] == node_type and name in node["inputs"] and not isinstance(
                    node["inputs"][name], list):
                node["inputs"][name] = value
    return prompt


def saved_videos(entry: dict, output_dir: str) -> list[tuple[str, int]]:
    """(path, frames) of every video a finished prompt wrote into the output folder."""
    import av

    found = []
    for outputs in entry.get("outputs", {}).values():
        for item in outputs.get("images", []) + outputs.get("videos", []):
            if item.get("type") != "output":
                continue
            path = os.path.join(output_dir, item.get("subfolder", ""), item["filename"])
            if not os.path.isfile(path) or os.path.getsize(path) == 0:
                raise CheckFailed(f"{path} was reported but not written")
            with av.open(path) as container:
                frames = sum(1 for _ in container.decode(video=0))
            found.append((os.path.relpath(path, output_dir), frames))
    return found


def check_run(server: Server, name: str, base: str, overrides: dict | None = None) -> str:
    prompt = apply_overrides(load_api(name), overrides or {})
    savers = [k for k, n in prompt.items() if n["class_type"] == "SaveVideo"]
    start = time.time()
    entry = server.run_prompt(prompt)
    seconds = time.time() - start
    videos = saved_videos(entry, os.path.join(base, "output"))
    if len(videos) != len(savers):
        raise CheckFailed(f"{len(savers)} Save Video nodes but {len(videos)} videos written: {videos}")
    empty = [v for v in videos if v[1] == 0]
    if empty:
        raise CheckFailed(f"videos without frames: {empty}")
    return f"{seconds:.1f} s, wrote " + ", ".join(f"{p} ({n} frames)" for p, n in videos)


# ---------------------------------------------------------------------------- the frontend in Chromium

BROWSER_CHECK_JS = r"""
async (workflow, api, userFiles) => {
  const problems = [];
  const missing = workflow.nodes.map(n => n.type).filter(t => !LiteGraph.registered_node_types[t]);
  if (missing.length) problems.push('missing node types: ' + [...new Set(missing)].join(', '));
  await app.loadGraphData(structuredClone(workflow), true, true, workflow.__name);
  await new Promise(r => setTimeout(r, 500));
  const graph = app.graph;
  const saved = graph.serialize();
  for (const node of workflow.nodes) {
    const live = graph.getNodeById(node.id);
    if (!live) { problems.push(`node ${node.id} (${node.type}) not created`); continue; }
    if (live.type !== node.type) problems.push(`node ${node.id}: type ${live.type}`);
    const out = saved.nodes.find(n => n.id === node.id);
    const want = JSON.stringify(node.widgets_values ?? []);
    const got = JSON.stringify(out.widgets_values ?? []);
    if (want !== got) problems.push(`node ${node.id} (${node.type}) widgets ${got} != file ${want}`);
    const values = (live.widgets ?? []).filter(w => w.options?.values && Array.isArray(w.options.values)
        && w.name !== 'control_after_generate' && w.type === 'combo');
    for (const w of values) {
      if (userFiles.includes(`${node.type}.${w.name}`)) continue;  // lists the user's own model folders
      if (!w.options.values.includes(w.value)) problems.push(`node ${node.id} ${w.name}: '${w.value}' not offered`);
    }
    const [minW, minH] = live.computeSize();
    const media = (live.widgets ?? []).some(w => w.name.endsWith('-preview'));  // sized by the file it shows
    if (!media && (node.size[0] + 1 < minW || node.size[1] + 1 < minH))
      problems.push(`node ${node.id} (${node.type}) size ${node.size} smaller than needed ${[minW, minH]}`);
    if (live.has_errors) problems.push(`node ${node.id} has errors`);
  }
  if (saved.links.length !== workflow.links.length) problems.push(`links ${saved.links.length} != ${workflow.links.length}`);
  for (const link of workflow.links) {
    const l = graph.links instanceof Map ? graph.links.get(link[0]) : graph.links[link[0]];
    if (!l || l.origin_id !== link[1] || l.origin_slot !== link[2] || l.target_id !== link[3]
        || l.target_slot !== link[4] || l.type !== link[5]) problems.push(`link ${link[0]} differs: ${JSON.stringify(l)}`);
  }
  const prompt = (await app.graphToPrompt()).output;
  for (const [id, entry] of Object.entries(prompt)) {  // frontend-only widgets (a loader's preview) are not inputs
    const def = graph.getNodeById(Number(id))?.constructor?.nodeData?.input ?? {};
    const known = new Set([...Object.keys(def.required ?? {}), ...Object.keys(def.optional ?? {})]);
    for (const name of Object.keys(entry.inputs)) if (!known.has(name) && !(name in (api[id]?.inputs ?? {}))) delete entry.inputs[name];
  }
  const norm = p => JSON.stringify(Object.keys(p).sort((a, b) => a - b).map(k =>
      [k, p[k].class_type, Object.keys(p[k].inputs).sort().map(i => [i, p[k].inputs[i]])]));
  if (norm(prompt) !== norm(api)) problems.push('graphToPrompt differs from the API twin: ' + norm(prompt).slice(0, 3000));
  const dialogs = [...document.querySelectorAll('.p-dialog')].map(d => d.innerText.slice(0, 300));
  if (dialogs.length) problems.push('dialogs open: ' + dialogs.join(' | '));
  app.canvas.ds.scale = workflow.extra.ds.scale;
  app.canvas.ds.offset = workflow.extra.ds.offset;
  app.canvas.setDirty(true, true);
  app.canvas.draw(true, true);
  return problems;
}
"""


class Browser:
    """Headless Chromium driven over the DevTools protocol (aiohttp websockets, which ComfyUI installs)."""

    def __init__(self, executable: str, profile: str):
        self.port = free_port()
        self.proc = subprocess.Popen(
            [executable, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--remote-debugging-port={self.port}",
             f"--window-size={VIEWPORT[0]},{VIEWPORT[1]}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self._ids = itertools.count(1)
        self.console_errors: list[str] = []

    async def connect(self, session) -> None:
        deadline = time.time() + 30
        while True:
            try:
                async with session.get(f"http://127.0.0.1:{self.port}/json/list") as r:
                    pages = [t for t in await r.json() if t["type"] == "page"]
                if pages:
                    break
            except Exception:
                pass
            if time.time() > deadline:
                raise CheckFailed("Chromium did not start")
            await asyncio.sleep(0.2)
        self.ws = await session.ws_connect(pages[0]["webSocketDebuggerUrl"], max_msg_size=0)

    async def call(self, method: str, **params):
        call_id = next(self._ids)
        await self.ws.send_json({"id": call_id, "method": method, "params": params})
        while True:
            message = await self.ws.receive_json()
            if message.get("method") == "Runtime.exceptionThrown":
                self.console_errors.append(message["params"]["exceptionDetails"].get("text", ""))
            if message.get("id") == call_id:
                if "error" in message:
                    raise CheckFailed(f"{method}: {message['error']}")
                return message["result"]

    async def evaluate(self, expression: str):
        result = await self.call("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            raise CheckFailed(f"page script failed: {json.dumps(result['exceptionDetails'])[:2000]}")
        return result["result"].get("value")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


async def run_in_frontend(browser: Browser, server: Server) -> float:
    """Queue the loaded workflow as the Run button does and wait until its previews are shown."""
    start = time.time()
    before = len(server.get("/history"))
    await browser.evaluate("app.queuePrompt(0, 1)")
    while len(server.get("/history")) == before or server.get("/queue")["queue_running"]:
        if time.time() - start > RUN_TIMEOUT_S:
            raise CheckFailed("the workflow queued from the frontend did not finish")
        await asyncio.sleep(0.5)
    entry = list(server.get("/history").values())[-1]
    if entry["status"].get("status_str") != "success":
        raise CheckFailed(f"the workflow queued from the frontend failed: {entry['status']}")
    await asyncio.sleep(2.0)  # previews arrive over the websocket
    return time.time() - start


async def browser_checks(server: Server, executable: str, names: list[str], screenshot_dir: str | None,
                         profile: str, run_in_browser: tuple[str, ...] = ()) -> list[str]:
    import aiohttp

    browser = Browser(executable, profile)
    lines = []
    try:
        async with aiohttp.ClientSession() as session:
            await browser.connect(session)
            await browser.call("Page.enable")
            await browser.call("Runtime.enable")
            await browser.call("Emulation.setDeviceMetricsOverride", width=VIEWPORT[0], height=VIEWPORT[1],
                               deviceScaleFactor=1, mobile=False)
            await browser.call("Page.navigate", url=server.url + "/")
            deadline = time.time() + BROWSER_TIMEOUT_S
            while not await browser.evaluate("!!(window.app && window.app.graph && window.LiteGraph "
                                             "&& LiteGraph.registered_node_types['InverseDVS_Sample'])"):
                if time.time() > deadline:
                    raise CheckFailed("the frontend did not come up")
                await asyncio.sleep(0.5)
            await asyncio.sleep(1.0)
            for name in names:
                with open(os.path.join(mw.WORKFLOW_DIR, name + ".json"), encoding="utf-8") as f:
                    workflow = json.load(f)
                workflow["__name"] = name + ".json"
                user_files = [f"{t}.{n}" for t, n in FOLDER_CHOICES if t != "InverseDVS_LoadVideo"]
                problems = await browser.evaluate(
                    f"({BROWSER_CHECK_JS})({json.dumps(workflow)}, {json.dumps(load_api(name))}, "
                    f"{json.dumps(user_files)})")
                if problems:
                    raise CheckFailed(f"{name} in the frontend:\n  " + "\n  ".join(problems))
                line = f"{name}: loads with no missing node or widget error, converts to its API twin"
                if name in run_in_browser:
                    seconds = await run_in_frontend(browser, server)
                    line += f", runs from the Run button in {seconds:.1f} s"
                if screenshot_dir:
                    await asyncio.sleep(0.5)
                    shot = await browser.call("Page.captureScreenshot", format="png")
                    path = os.path.join(screenshot_dir, f"{name}.png")
                    with open(path, "wb") as f:
                        f.write(base64.b64decode(shot["data"]))
                    line += f", screenshot {os.path.relpath(path, PACK_ROOT)}"
                lines.append(line)
    finally:
        browser.stop()
    return lines


# ---------------------------------------------------------------------------- main


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--comfyui", default=os.environ.get("COMFYUI_DIR"), help="ComfyUI checkout ($COMFYUI_DIR)")
    parser.add_argument("--python", default=os.environ.get("COMFYUI_PYTHON", sys.executable),
                        help="Python that runs ComfyUI (default: this one, or $COMFYUI_PYTHON)")
    parser.add_argument("--browser", default=os.environ.get("INVERSEDVS_BROWSER", shutil.which("chromium") or ""),
                        help="Chromium executable for the frontend check; 'none' skips it")
    parser.add_argument("--screenshots", default=os.path.join(PACK_ROOT, "docs"),
                        help="folder for the frontend screenshots ('none': keep none)")
    parser.add_argument("--skip-full", action="store_true", help="do not run the full workflow")
    parser.add_argument("--keep", action="store_true", help="keep the temporary base directory")
    args = parser.parse_args(argv)
    if not args.comfyui or not os.path.isfile(os.path.join(args.comfyui, "main.py")):
        print("give a ComfyUI checkout with --comfyui or COMFYUI_DIR", file=sys.stderr)
        return 2

    names = [flow.name for flow in mw.workflows()]
    geometry, full, sweep = names
    base = tempfile.mkdtemp(prefix="inversedvs_host_")
    server = None
    ok = True
    try:
        yaml_path = prepare_base(base)
        report(True, "temporary ComfyUI base", base)
        server = Server(os.path.abspath(args.comfyui), args.python, base, yaml_path, free_port())
        server.wait_ready()
        report(True, "ComfyUI started", server.url)
        check_import_log(server)
        report(True, "pack imported", "no import error in the log")
        count = check_object_info(server)
        report(True, "/object_info", f"{count} pack nodes match their classes; core nodes match CORE_NODES")
        check_templates(server, names)
        report(True, "templates", f"{len(names)} workflows served under {PACK_FOLDER}")
        report(True, f"run {geometry}", check_run(server, geometry, base))
        if not args.skip_full:
            report(True, f"run {full} (tiny models)", check_run(server, full, base, FULL_RUN_OVERRIDES))
            report(True, f"run {sweep} (tiny models)", check_run(server, sweep, base, FULL_RUN_OVERRIDES))
        if args.browser and args.browser != "none":
            shots = None if args.screenshots == "none" else args.screenshots
            if shots:
                os.makedirs(shots, exist_ok=True)
            lines = asyncio.run(browser_checks(server, args.browser, names, shots, os.path.join(base, "chromium"),
                                               run_in_browser=(geometry,)))
            for line in lines:
                report(True, "frontend", line)
    except CheckFailed as e:
        ok = report(False, "host check", str(e))
    finally:
        if server is not None:
            server.stop()
            if not ok:
                print("---- ComfyUI log (tail) ----\n" + server.log()[-6000:])
        if args.keep:
            print("kept", base)
        else:
            shutil.rmtree(base, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
