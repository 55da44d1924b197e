"""Deployment files: deploy/docker-compose.yml and deploy/compose/, the
Dockerfile and .dockerignore, the systemd unit. There is no Docker daemon
and no running systemd here, so these are checked statically (parsed, every
sn-broker setting checked by the broker itself, every Debian package looked
up, the unit through systemd-analyze), and the compose file's broker
configuration is run for real against a local PostgreSQL and a mock Kafka,
its host names and container paths swapped for local ones."""
import base64
import glob
import os
import re
import shutil
import signal
import subprocess
import tempfile

import yaml

from harness import BIN, ROOT, SNCTL, Broker, Postgres, Session, check, wait_for
from delivery_util import KafkaMock

DEPLOY = os.path.join(ROOT, "deploy")
COMPOSE_FILE = os.path.join(DEPLOY, "docker-compose.yml")
DOCKERFILE = os.path.join(DEPLOY, "Dockerfile")
UNIT = os.path.join(DEPLOY, "sn-broker.service")
BINARIES = ("sn-broker", "snctl", "sn-emit", "sn-simulate")


def tmpdir(name):
    return tempfile.mkdtemp(prefix=name + "-", dir=Session.get_root())


# ---- sn-broker's own list of keys -------------------------------------------------------

_keys = None


def config_keys():
    """{SN_VARIABLE: section.key}, from the lines of `sn-broker --help` such as
    `  http.listen (SN_HTTP_LISTEN, default "127.0.0.1:8080")`."""
    global _keys
    if _keys is None:
        out = subprocess.run([BIN, "--help"], capture_output=True, text=True, timeout=10).stdout
        _keys = {m.group(2): m.group(1)
                 for m in re.finditer(r"^  ([a-z_]+\.[a-z_]+) \((SN_[A-Z0-9_]+), default ", out, re.M)}
        check(len(_keys) > 40 and _keys.get("SN_HTTP_LISTEN") == "http.listen",
              "sn-broker --help lists its keys", "> 40 keys", len(_keys))
    return _keys


def broker_accepts(env):
    """Runs the broker on env alone with a bad --log-level, which is checked
    after the environment: when it is the log level that is refused, every
    SN_* value was accepted. Returns (accepted, message)."""
    r = subprocess.run([BIN, "--log-level", "?"], env=env, capture_output=True, text=True, timeout=10)
    out = r.stderr + r.stdout
    return r.returncode == 2 and "option: bad value '?' for log.level" in out, out.strip()


# ---- the compose file -------------------------------------------------------------------

def compose():
    with open(COMPOSE_FILE) as f:
        return yaml.safe_load(f)


def parse_env_file(path):
    """KEY=VALUE lines as compose reads them: # comments, blank lines,
    optional quotes around the value."""
    env = {}
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            check("=" in line, "%s:%d is KEY=VALUE" % (path, n), "KEY=VALUE", line)
            key, value = line.split("=", 1)
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            env[key.strip()] = value
    return env


def as_list(value):
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def service_env(svc):
    """A service's environment: its env_file(s), then environment (which
    wins), and where each variable came from."""
    env, origin = {}, {}
    for ref in as_list(svc.get("env_file")):
        path = ref["path"] if isinstance(ref, dict) else ref
        full = os.path.join(DEPLOY, path)
        check(os.path.isfile(full), "env_file %s exists" % path, full, None)
        for k, v in parse_env_file(full).items():
            env[k], origin[k] = v, path
    given = svc.get("environment") or {}
    if isinstance(given, list):
        given = dict(item.split("=", 1) for item in given)
    for k, v in given.items():
        env[k], origin[k] = ("" if v is None else str(v)), "environment"
    return env, origin


def is_broker(svc):
    build = svc.get("build")
    return (isinstance(build, dict) and build.get("dockerfile") == "deploy/Dockerfile"
            and svc.get("user") is None and not svc.get("entrypoint"))


def brokers(doc):
    return {name: svc for name, svc in doc["services"].items() if is_broker(svc)}


def volume_target(svc, volume):
    for v in svc.get("volumes") or []:
        parts = v.split(":")
        if parts[0] == volume:
            return parts[1]
    return None


def test_compose_has_kraft_kafka_postgres_two_brokers_and_a_mail_catcher():
    doc = compose()
    services = doc["services"]
    check("zookeeper" not in yaml.safe_dump(doc).lower(), "no ZooKeeper in any service")

    kafka = [n for n, s in services.items() if str(s.get("image", "")).startswith("apache/kafka:")
             and "KAFKA_PROCESS_ROLES" in (s.get("environment") or {})]
    check(len(kafka) == 1, "one Kafka node (apache/kafka with KAFKA_PROCESS_ROLES)", 1, kafka)
    kenv = {k: str(v) for k, v in services[kafka[0]]["environment"].items()}
    check(sorted(kenv["KAFKA_PROCESS_ROLES"].split(",")) == ["broker", "controller"],
          "KRaft: the node is broker and controller", "broker,controller", kenv["KAFKA_PROCESS_ROLES"])
    node = kenv.get("KAFKA_NODE_ID")
    voters = kenv.get("KAFKA_CONTROLLER_QUORUM_VOTERS", "")
    check(voters == "%s@%s:9093" % (node, kafka[0]), "the quorum is this node's controller listener",
          "%s@%s:9093" % (node, kafka[0]), voters)
    check("CONTROLLER://:9093" in kenv.get("KAFKA_LISTENERS", "")
          and kenv.get("KAFKA_CONTROLLER_LISTENER_NAMES") == "CONTROLLER",
          "a CONTROLLER listener on 9093", None, kenv)
    check(kenv.get("KAFKA_ADVERTISED_LISTENERS") == "PLAINTEXT://%s:9092" % kafka[0],
          "advertised to the compose network by service name", None, kenv.get("KAFKA_ADVERTISED_LISTENERS"))
    cluster_id = kenv.get("CLUSTER_ID", "")
    try:
        raw = base64.urlsafe_b64decode(cluster_id + "==")
    except ValueError:
        raw = b""
    check(len(cluster_id) == 22 and len(raw) == 16, "CLUSTER_ID is a UUID in base64 (22 characters)",
          "22 characters", cluster_id)
    check(kenv.get("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR") == "1",
          "one node: offsets topic replication factor 1", "1", kenv.get("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"))

    pg = [n for n, s in services.items() if str(s.get("image", "")).startswith("postgres:")]
    check(len(pg) == 1 and services[pg[0]]["image"] == "postgres:15", "one postgres:15", ["postgres:15"],
          [services[n]["image"] for n in pg])
    pgs = services[pg[0]]
    penv = pgs.get("environment") or {}
    check("POSTGRES_PASSWORD" not in penv, "no POSTGRES_PASSWORD in the environment")
    pwfile = penv.get("POSTGRES_PASSWORD_FILE", "")
    check(pwfile.startswith("/run/secrets/"), "POSTGRES_PASSWORD_FILE is a secret", "/run/secrets/...", pwfile)
    secret = pwfile.rsplit("/", 1)[1]
    check(secret in as_list(pgs.get("secrets")), "postgres is given the secret", secret, pgs.get("secrets"))
    check("file" in doc["secrets"][secret], "the secret is a file", None, doc["secrets"][secret])
    secret_dir = os.path.dirname(os.path.join(DEPLOY, doc["secrets"][secret]["file"]))
    check(os.path.isfile(os.path.join(secret_dir, ".gitignore")),
          "the secret's directory exists and keeps its files out of git", secret_dir, None)
    check("test" in (pgs.get("healthcheck") or {}) and "pg_isready" in pgs["healthcheck"]["test"],
          "postgres has a pg_isready health check", None, pgs.get("healthcheck"))

    mail = [n for n, s in services.items() if str(s.get("image", "")).startswith("axllent/mailpit")]
    check(len(mail) == 1, "a mail catcher (mailpit)", 1, mail)

    b = brokers(doc)
    check(len(b) == 2, "two sn-broker services built from deploy/Dockerfile", 2, sorted(b))
    ports = []
    for name, svc in b.items():
        check(os.path.normpath(os.path.join(DEPLOY, svc["build"]["context"])) == ROOT,
              "%s is built from the repository root" % name, ROOT, svc["build"]["context"])
        deps = svc.get("depends_on") or {}
        check(isinstance(deps, dict), "%s: depends_on with conditions" % name, "a mapping", deps)
        check(deps.get(pg[0], {}).get("condition") == "service_healthy",
              "%s waits for postgres to be healthy" % name, "service_healthy", deps.get(pg[0]))
        waits_kafka = [d for d in deps if d == kafka[0] or kafka[0] in str(
            (services[d].get("depends_on") or {}))]
        check(waits_kafka, "%s waits for Kafka (or for the job that waits for it)" % name, kafka[0], deps)
        for dep, cond in deps.items():
            check(dep in services, "%s depends on an existing service" % name, dep, sorted(services))
            if cond.get("condition") == "service_healthy":
                check("healthcheck" in services[dep], "%s has a health check to wait for" % dep)
            check(cond.get("condition") in ("service_healthy", "service_completed_successfully"),
                  "%s waits for %s to be healthy or done, not just started" % (name, dep), None, cond)
        env, _ = service_env(svc)
        url = env.get("SN_SMTP_URL", "")
        check(re.fullmatch(r"smtps?://%s:\d+" % re.escape(mail[0]), url),
              "%s mails through the catcher" % name, "smtp://%s:PORT" % mail[0], url)
        check(env.get("SN_KAFKA_BOOTSTRAP_SERVERS") == "%s:9092" % kafka[0], "%s uses the Kafka node" % name,
              "%s:9092" % kafka[0], env.get("SN_KAFKA_BOOTSTRAP_SERVERS"))
        check(("host=%s " % pg[0]) in env.get("SN_DATABASE_URL", "") + " ", "%s uses postgres" % name,
              None, env.get("SN_DATABASE_URL"))
        check(svc.get("stop_grace_period") == "12s", "%s: 12s to drain on SIGTERM" % name,
              "12s", svc.get("stop_grace_period"))
        ports += svc.get("ports") or []
    for name, svc in services.items():
        for p in svc.get("ports") or []:
            check(str(p).startswith("127.0.0.1:"), "%s publishes on loopback only" % name, "127.0.0.1:...", p)
    check(len(set(ports)) == len(ports) == 2, "each broker's API published once, on its own port", 2, ports)
    # what the compose file mounts from the repository exists
    for name, svc in services.items():
        for v in svc.get("volumes") or []:
            if v.startswith("./"):
                path = os.path.join(DEPLOY, v.split(":")[0])
                check(os.path.exists(path), "%s mounts %s, which exists" % (name, v), path, None)


def test_compose_sets_only_real_broker_keys_with_accepted_values_and_no_secret():
    keys = config_keys()
    doc = compose()
    for name, svc in sorted(brokers(doc).items()):
        env, origin = service_env(svc)
        sn = {k: v for k, v in env.items() if k.startswith("SN_")}
        check(len(sn) >= 8, "%s is configured through SN_* variables" % name, ">= 8", sorted(sn))
        unknown = ["%s (%s)" % (k, origin[k]) for k in sn if k not in keys]
        check(not unknown, "%s: every SN_* variable is a key of sn-broker --help" % name, [], unknown)
        for k, v in sn.items():
            check(not (re.search(r"PASSWORD|SECRET|TOKEN", k) and not k.endswith("_FILE")),
                  "%s: no secret in the environment (%s)" % (name, k), "a _FILE key", k)
            check(not re.search(r"password\s*=|://[^/@]*:[^/@]*@", v, re.I),
                  "%s: no password in %s" % (name, k), "passfile=...", v)
        accepted, message = broker_accepts(sn)
        check(accepted, "sn-broker accepts every value %s sets" % name, "only the --log-level refused", message)
    # the check above would see a bad value: the same with one broken
    bad = dict(sn, SN_HTTP_LISTEN="8080")
    accepted, message = broker_accepts(bad)
    check(not accepted and "SN_HTTP_LISTEN" in message, "a bad value is caught by the same check",
          "an error naming SN_HTTP_LISTEN", message)
    # the image's own defaults too
    image_env = {k: v for k, v in dockerfile_env().items() if k.startswith("SN_")}
    check(all(k in keys for k in image_env), "the image's SN_* defaults are keys", sorted(keys), sorted(image_env))
    accepted, message = broker_accepts(image_env)
    check(accepted, "sn-broker accepts the image's SN_* defaults", "only the --log-level refused", message)


# ---- the Dockerfile and .dockerignore ----------------------------------------------------

def dockerfile_instructions():
    """[(INSTRUCTION, arguments)], continuation lines joined, comments dropped."""
    out, buf = [], ""
    with open(DOCKERFILE) as f:
        for line in f:
            s = line.rstrip("\n")
            if not buf and (not s.strip() or s.lstrip().startswith("#")):
                continue
            if s.lstrip().startswith("#"):
                continue
            if s.endswith("\\"):
                buf += s[:-1] + " "
                continue
            buf += s
            word, _, rest = buf.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
            buf = ""
    return out


def dockerfile_stages():
    stages = []
    for ins, args in dockerfile_instructions():
        if ins == "FROM":
            parts = args.split()
            stages.append({"base": parts[0], "name": parts[2] if len(parts) > 2 else None, "ins": []})
        else:
            check(stages, "the Dockerfile starts with FROM (or ARG)", "FROM", ins)
            stages[-1]["ins"].append((ins, args))
    return stages


def dockerfile_env():
    env = {}
    for ins, args in dockerfile_stages()[-1]["ins"]:
        if ins == "ENV":
            for k, v in re.findall(r"(\w+)=(\S+)", args):
                env[k] = v
    return env


def apt_packages(stage):
    pkgs = []
    for ins, args in stage["ins"]:
        if ins != "RUN":
            continue
        for cmd in re.split(r"&&|;|\|\|", args):
            words = cmd.split()
            if words[:2] == ["apt-get", "install"]:
                pkgs += [w for w in words[2:] if not w.startswith("-")]
    return pkgs


def copies(stage):
    """[(sources, destination, from-stage or None)] of a stage's COPY lines."""
    out = []
    for ins, args in stage["ins"]:
        if ins == "COPY":
            words = args.split()
            frm = [w.split("=", 1)[1] for w in words if w.startswith("--from=")]
            words = [w for w in words if not w.startswith("--")]
            out.append((words[:-1], words[-1], frm[0] if frm else None))
    return out


def dockerignore_excludes(path, patterns):
    """Docker's rule: the last pattern that matches the path or one of its
    parent directories decides; '!' re-includes."""
    def regex(pattern):
        out, i = "", 0
        while i < len(pattern):
            if pattern.startswith("**", i):
                out, i = out + ".*", i + 2
            else:
                c = pattern[i]
                out += "[^/]*" if c == "*" else "[^/]" if c == "?" else re.escape(c)
                i += 1
        return out
    parts = path.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    excluded = False
    for pat in patterns:
        neg = pat.startswith("!")
        rx = regex(pat.lstrip("!").strip("/"))
        if any(re.fullmatch(rx, p) for p in prefixes):
            excluded = not neg
    return excluded


def build_context():
    """The files `docker build .` would send: the repository's files that
    .dockerignore keeps."""
    with open(os.path.join(ROOT, ".dockerignore")) as f:
        patterns = [l.strip() for l in f if l.strip() and not l.startswith("#")]
    files = subprocess.run(["git", "-C", ROOT, "ls-files", "--cached", "--others", "--exclude-standard"],
                           capture_output=True, text=True, check=True).stdout.split()
    return {p for p in files if os.path.exists(os.path.join(ROOT, p)) and not dockerignore_excludes(p, patterns)}


def test_dockerfile_is_multistage_debian_slim_and_runs_unprivileged():
    stages = dockerfile_stages()
    check(len(stages) >= 2, "multi-stage: a build stage and a runtime stage", ">= 2", len(stages))
    for s in stages:
        check(s["base"] in ("debian:12-slim", "debian:bookworm-slim"), "each stage is Debian 12 slim",
              "debian:12-slim", s["base"])
    build, runtime = stages[0], stages[-1]
    check(build["name"], "the build stage is named", "FROM ... AS build", build)
    check(any(i == "RUN" and re.search(r"\bmake\b", a) for i, a in build["ins"]), "the build stage runs make")
    ins = [i for i, _ in runtime["ins"]]
    users = [a for i, a in runtime["ins"] if i == "USER"]
    check(users and re.fullmatch(r"[1-9]\d*(:\d+)?", users[-1]), "the runtime stage runs as a numeric non-root user",
          "USER 10001:10001", users)
    check(ins.index("USER") > max(i for i, x in enumerate(ins) if x in ("RUN", "COPY")),
          "USER comes after every RUN and COPY of the runtime stage", None, ins)
    args = dict(runtime["ins"])
    check(args.get("EXPOSE") == "8080", "EXPOSE 8080", "8080", args.get("EXPOSE"))
    check(args.get("STOPSIGNAL") == "SIGTERM", "STOPSIGNAL SIGTERM", "SIGTERM", args.get("STOPSIGNAL"))
    health = args.get("HEALTHCHECK", "")
    check("/healthz" in health and "127.0.0.1:8080" in health, "HEALTHCHECK asks /healthz", None, health)
    tool = re.search(r'CMD \["([^"]+)"', health)
    check(tool and tool.group(1) in ("curl", "/usr/bin/curl") and "curl" in apt_packages(runtime),
          "the health check's curl is installed in the runtime stage", "curl", tool and tool.group(1))
    check("sn-broker" in args.get("ENTRYPOINT", ""), "the entry point is sn-broker", None, args.get("ENTRYPOINT"))
    binaries = [os.path.basename(src) for srcs, dest, frm in copies(runtime) if frm == build["name"]
                for src in srcs if dest.rstrip("/") == "/usr/bin"]
    check(sorted(binaries) == sorted(BINARIES), "the four binaries go to /usr/bin", sorted(BINARIES), binaries)


def test_dockerfile_packages_exist_in_bookworm_and_cover_the_libraries():
    with open("/etc/os-release") as f:
        codename = dict(l.strip().split("=", 1) for l in f if "=" in l).get("VERSION_CODENAME")
    if codename != "bookworm" or not glob.glob("/var/lib/apt/lists/*_Packages*"):
        print("    SKIPPED: apt look-ups need Debian 12 (bookworm) with package lists; this is %s%s"
              % (codename, "" if glob.glob("/var/lib/apt/lists/*_Packages*") else " without lists"))
        return
    stages = dockerfile_stages()
    build, runtime = stages[0], stages[-1]
    build_pkgs, runtime_pkgs = apt_packages(build), apt_packages(runtime)
    check(build_pkgs and runtime_pkgs, "both stages install packages", None, (build_pkgs, runtime_pkgs))
    check(not any(p.endswith("-dev") or p == "build-essential" for p in runtime_pkgs),
          "no -dev package or compiler in the runtime stage", [], runtime_pkgs)

    def closure(pkgs):
        """The packages and everything they depend on (a name apt does not know is left out)."""
        out = subprocess.run(["apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests",
                              "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances"] + pkgs,
                             capture_output=True, text=True, timeout=60).stdout
        return {l.strip() for l in out.splitlines() if l and not l.startswith(" ")}

    build_closure, runtime_closure = closure(build_pkgs), closure(runtime_pkgs)
    unknown = [p for p in build_pkgs if p not in build_closure] + [p for p in runtime_pkgs if p not in runtime_closure]
    check(not unknown, "every package the Dockerfile installs exists in bookworm", [], unknown)

    def owners(paths):
        r = subprocess.run(["dpkg", "-S"] + paths, capture_output=True, text=True, timeout=30)
        found = {}
        for line in r.stdout.splitlines():
            pkg, _, path = line.partition(": ")
            found[path] = pkg.split(":")[0]
        return found

    # the runtime stage: the packages of the libraries the binaries load, as the
    # image builds them (make, without sanitizers: the plain build, whichever
    # build this run tests)
    release = os.path.join(ROOT, "build", "bin")
    if not os.path.exists(os.path.join(release, "sn-broker")):
        print("    SKIPPED: the library check needs the plain build (make) in %s" % release)
        return
    libs = set()
    for name in BINARIES:
        out = subprocess.run(["ldd", os.path.join(release, name)], capture_output=True,
                             text=True, timeout=10).stdout
        libs |= set(re.findall(r"=> (/\S+)", out))
    check(len(libs) > 5, "ldd lists the binaries' libraries", "> 5", sorted(libs))
    candidates = {}
    for lib in libs:
        real = os.path.realpath(lib)
        candidates[lib] = [lib, real] + ["/usr" + p for p in (lib, real) if p.startswith("/lib")]
    owned = owners(sorted({c for cs in candidates.values() for c in cs}))
    missing = []
    for lib, cs in sorted(candidates.items()):
        pkg = next((owned[c] for c in cs if c in owned), None)
        if pkg is None or pkg not in runtime_closure:
            missing.append("%s (%s)" % (lib, pkg))
    check(not missing, "the runtime stage installs (or pulls in) the package of every library", [], missing)

    # the build stage: the -dev package of every pkg-config module of the Makefile
    with open(os.path.join(ROOT, "Makefile")) as f:
        modules = re.search(r"^PKGS\s*=\s*(.+)$", f.read(), re.M).group(1).split()
    pcs = {}
    for m in modules:
        d = subprocess.run(["pkg-config", "--variable=pcfiledir", m], capture_output=True, text=True).stdout.strip()
        pcs[m] = os.path.join(d, m + ".pc")
    owned = owners(sorted(set(pcs.values())))
    missing = ["%s (%s)" % (m, owned.get(pc)) for m, pc in pcs.items() if owned.get(pc) not in build_closure]
    check(not missing, "the build stage installs the -dev package of every module the Makefile needs", [], missing)


def test_build_context_has_what_the_build_and_the_image_need():
    context = build_context()
    for leaked in ("build/", "var/", ".git/", "tests/", "deploy/compose/secrets/"):
        check(not any(p.startswith(leaked) for p in context), "%s stays out of the build context" % leaked)
    stages = dockerfile_stages()
    build, runtime = stages[0], stages[-1]
    # the build stage: its COPYs into a directory, then make -n of the same targets
    work = tmpdir("context")
    workdir = [a for i, a in build["ins"] if i == "WORKDIR"][-1]
    for srcs, dest, frm in copies(build):
        check(frm is None, "the build stage copies from the context")
        dest = os.path.join(work, os.path.relpath(os.path.join(workdir, dest), workdir))
        for src in srcs:
            src = src.rstrip("/")
            if src in context:  # a file: into dest/ or as dest
                pairs = [(src, os.path.join(dest, os.path.basename(src)) if dest.endswith("/") else dest)]
            else:  # a directory: its contents into dest
                pairs = [(p, os.path.join(dest, p[len(src) + 1:])) for p in context if p.startswith(src + "/")]
            check(pairs, "COPY %s finds files in the build context" % src)
            for p, target in pairs:
                os.makedirs(os.path.dirname(target), exist_ok=True)
                shutil.copy2(os.path.join(ROOT, p), target)
    make = [a for i, a in build["ins"] if i == "RUN" and re.match(r"make\b", a)][-1]
    targets = [w for w in make.split() if w.startswith("build/bin/")]
    check(sorted(os.path.basename(t) for t in targets) == sorted(BINARIES), "make builds the four binaries",
          sorted(BINARIES), targets)
    r = subprocess.run(["make", "-n", "-C", work, "SN_COMMIT=test"] + targets, capture_output=True,
                       text=True, timeout=60)
    check(r.returncode == 0, "make -n finds every source it needs in what the build stage copies",
          0, r.stderr[-1500:])
    # the runtime stage: the schemas and rules the image's (and compose's) settings point at
    dests = {}
    for srcs, dest, frm in copies(runtime):
        if frm is None:
            for src in srcs:
                check(any(p == src.rstrip("/") or p.startswith(src.rstrip("/") + "/") for p in context),
                      "COPY %s finds files in the build context" % src)
                dests[dest.rstrip("/")] = src.rstrip("/")
    for key in ("SN_SCHEMAS_DIR", "SN_RULES_PATH"):
        value = dockerfile_env().get(key)
        check(value in dests, "%s=%s is a directory the image is given" % (key, value), sorted(dests), value)
        for name, svc in brokers(compose()).items():
            env, _ = service_env(svc)
            check(env.get(key, value) in dests, "%s's %s is in the image" % (name, key), sorted(dests), env.get(key))


# ---- the systemd unit -------------------------------------------------------------------

def unit_directives(path):
    out = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if "=" in line and not line.startswith(("#", ";", "[")):
                k, v = line.split("=", 1)
                out.setdefault(k, []).append(v)
    return out


def verify(path):
    r = subprocess.run(["systemd-analyze", "verify", path], capture_output=True, text=True, timeout=30)
    return r.returncode, (r.stdout + r.stderr).strip()


def test_systemd_unit_verifies_clean_and_is_hardened():
    check(shutil.which("systemd-analyze"), "systemd-analyze is installed (package systemd)")
    d = unit_directives(UNIT)
    exec_start = d.get("ExecStart", [""])[0]
    check(exec_start == "/usr/bin/sn-broker --config /etc/sn-broker/sn-broker.conf", "ExecStart",
          "/usr/bin/sn-broker --config /etc/sn-broker/sn-broker.conf", exec_start)
    # verify also checks that ExecStart's binary exists: the same unit, on the built binary
    with open(UNIT) as f:
        text = f.read().replace("ExecStart=/usr/bin/sn-broker ", "ExecStart=%s " % os.path.abspath(BIN))
    work = tmpdir("unit")
    clean, broken = os.path.join(work, "sn-broker.service"), os.path.join(work, "broken", "sn-broker.service")
    os.makedirs(os.path.dirname(broken))
    with open(clean, "w") as f:
        f.write(text)
    with open(broken, "w") as f:
        f.write(text.replace("ProtectHome=yes", "ProtectHome=maybe\nPrivateTmpp=yes"))
    code, out = verify(clean)
    check(code == 0 and out == "", "systemd-analyze verify: no error and no warning", "", out)
    # verify only warns about a bad line, and exits 0: the empty output above is what counts
    code, out = verify(broken)
    check("ProtectHome" in out or "protect home" in out.lower(), "verify reports a bad value", "a warning", out)
    check("PrivateTmpp" in out, "verify reports an unknown directive", "a warning", out)

    want = {"Type": "simple", "Restart": "on-failure", "KillSignal": "SIGTERM", "ProtectSystem": "strict",
            "ProtectHome": "yes", "PrivateTmp": "yes", "NoNewPrivileges": "yes", "PrivateDevices": "yes",
            "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes", "ProtectKernelLogs": "yes",
            "ProtectControlGroups": "yes", "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
            "RestrictNamespaces": "yes", "LockPersonality": "yes", "MemoryDenyWriteExecute": "yes",
            "CapabilityBoundingSet": "", "UMask": "0077", "RestrictSUIDSGID": "yes",
            "SystemCallArchitectures": "native"}
    wrong = {k: (v, d.get(k)) for k, v in want.items() if d.get(k, [None])[-1] != v}
    check(not wrong, "the unit's hardening directives", {}, wrong)
    check("@system-service" in d.get("SystemCallFilter", []), "SystemCallFilter=@system-service", None,
          d.get("SystemCallFilter"))
    check(d.get("User") == ["sn-broker"] and d.get("Group") == ["sn-broker"], "a user of its own", "sn-broker",
          (d.get("User"), d.get("Group")))
    stop = re.fullmatch(r"(\d+)s", d.get("TimeoutStopSec", [""])[-1])
    check(stop and 10 < int(stop.group(1)) <= 20, "TimeoutStopSec a little over the 10 s drain", "11s..20s",
          d.get("TimeoutStopSec"))
    # secrets come from files, never from the command line
    check(not re.search(r"password|secret|token", exec_start, re.I), "no secret on the command line")
    check(d.get("LoadCredential") or d.get("EnvironmentFile"), "secrets from LoadCredential= or EnvironmentFile=")
    for cred in d.get("LoadCredential", []):
        check(cred.split(":", 1)[1].startswith("/etc/sn-broker/"), "credentials come from /etc/sn-broker",
              "/etc/sn-broker/...", cred)
    # not a credential: systemd lets a User= read those through an ACL, which shows as group
    # access, and libpq ignores a password file its group can read
    check("PGPASSFILE=/etc/sn-broker/pgpass" in d.get("Environment", []),
          "libpq's password file is a file of the service's user", "PGPASSFILE=/etc/sn-broker/pgpass",
          d.get("Environment"))

    r = subprocess.run(["systemd-analyze", "security", "--offline=yes", clean], capture_output=True,
                       text=True, timeout=30)
    level = re.search(r"Overall exposure level for \S+: ([\d.]+)", r.stdout)
    if r.returncode != 0 and not level:
        print("    SKIPPED exposure score: systemd-analyze security --offline is not supported here: %s"
              % r.stderr.strip()[:200])
    else:
        print("    systemd-analyze security: exposure %s" % level.group(1))
        check(float(level.group(1)) <= 2.0, "systemd-analyze security rates the unit OK (exposure <= 2.0)",
              "<= 2.0", level.group(1))


# ---- the compose file's scripts and broker configuration, run here ----------------------

def run_init(doc, work):
    """Runs compose/init.sh as the init service does, its secret and volumes
    mapped to files and directories of work; returns {container path: local}."""
    init = doc["services"]["init"]
    script = [v for v in init["volumes"] if v.startswith("./")][0].split(":")
    check(init["entrypoint"][-1] == script[1], "init runs the mounted script", script[1], init["entrypoint"])
    password_file = os.path.join(work, "postgres-password")
    if not os.path.exists(password_file):
        with open(password_file, "w") as f:
            f.write("s3cr:et\\pw\n")
    paths = {"/run/secrets/" + as_list(init["secrets"])[0]: password_file}
    for v in init["volumes"]:
        name, target = v.split(":")[:2]
        if name in doc["volumes"]:
            paths[target] = os.path.join(work, name)
            os.makedirs(paths[target], exist_ok=True)
    argv = init["entrypoint"][:-1] + [os.path.join(DEPLOY, script[0])] + [paths.get(a, a) for a in init["command"]]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, "init.sh ran", 0, r.stderr)
    return paths


def local_path(doc, service, container_path, paths):
    """Where a path of a service's container lies after run_init()."""
    for v in doc["services"][service].get("volumes") or []:
        name, target = v.split(":")[:2]
        if container_path.startswith(target + "/"):
            init_target = volume_target(doc["services"]["init"], name)
            return os.path.join(paths[init_target], container_path[len(target) + 1:])
    raise AssertionError("%s is on no volume of %s" % (container_path, service))


def test_init_script_writes_a_private_pgpass_and_a_verifiable_mail_certificate():
    doc = compose()
    work = tmpdir("init")
    paths = run_init(doc, work)
    broker = sorted(brokers(doc))[0]
    env, _ = service_env(doc["services"][broker])
    pgpass = local_path(doc, broker, re.search(r"passfile=(\S+)", env["SN_DATABASE_URL"]).group(1), paths)
    st = os.stat(pgpass)
    user = int([a for i, a in dockerfile_stages()[-1]["ins"] if i == "USER"][-1].split(":")[0])
    check(st.st_mode & 0o777 == 0o600 and st.st_uid == user, "the brokers' pgpass: the image's USER owns it, "
          "mode 0600", (user, "0o600"), (st.st_uid, oct(st.st_mode & 0o777)))
    with open(pgpass) as f:
        line = f.read()
    check(line == "*:*:sn_broker:sn_broker:s3cr\\:et\\\\pw\n", "pgpass escapes : and \\",
          "*:*:sn_broker:sn_broker:s3cr\\:et\\\\pw\\n", line)

    mail = [n for n, s in doc["services"].items() if str(s.get("image", "")).startswith("axllent/mailpit")][0]
    menv = doc["services"][mail]["environment"]
    cert = local_path(doc, mail, menv["MP_SMTP_TLS_CERT"], paths)
    key = local_path(doc, mail, menv["MP_SMTP_TLS_KEY"], paths)
    ca = local_path(doc, broker, env["SN_SMTP_CA_FILE"], paths)
    r = subprocess.run(["openssl", "verify", "-CAfile", ca, "-verify_hostname", mail, "-purpose", "sslserver",
                        cert], capture_output=True, text=True, timeout=10)
    check(r.returncode == 0, "mailpit's certificate verifies for the host name %s against the brokers' CA" % mail,
          "OK", r.stdout + r.stderr)
    from_cert = subprocess.run(["openssl", "x509", "-in", cert, "-noout", "-pubkey"], capture_output=True,
                               text=True).stdout
    from_key = subprocess.run(["openssl", "pkey", "-in", key, "-pubout"], capture_output=True, text=True).stdout
    check(from_cert and from_cert == from_key, "mailpit's key is its certificate's")
    for name in os.listdir(os.path.dirname(ca)):
        with open(os.path.join(os.path.dirname(ca), name)) as f:
            check("PRIVATE KEY" not in f.read(), "no private key on the brokers' volume", None, name)
    with open(ca) as f:
        first = f.read()
    run_init(doc, work)
    with open(ca) as f:
        check(f.read() == first, "a restart keeps the CA (mailpit's certificate stays valid)")


def test_compose_brokers_run_here_share_one_database_and_take_a_first_admin_token():
    doc = compose()
    work = tmpdir("compose")
    paths = run_init(doc, work)
    pg = Postgres().start()
    pg.psql("CREATE DATABASE sn_broker OWNER sn_broker")
    services = doc["services"]
    kafka = KafkaMock(topics=["reviews.completed", "reviews.completed.dlq", "safety-notices"])
    # container paths and compose host names, for local ones
    stages = dockerfile_stages()
    local = {dest.rstrip("/"): os.path.join(ROOT, srcs[0].rstrip("/"))
             for srcs, dest, frm in copies(stages[-1]) if frm is None}
    started = []
    for name, svc in sorted(brokers(doc).items()):
        env, _ = service_env(svc)
        for v in svc.get("volumes") or []:
            vol, target = v.split(":")[:2]
            local[target] = paths[volume_target(services["init"], vol)]
        sn = {}
        for k, v in env.items():
            for container, here in sorted(local.items(), key=lambda kv: -len(kv[0])):
                v = re.sub(r"(?<![\w/])%s(?=/|$|\s)" % re.escape(container), here, v)
            sn[k] = v
        sn["SN_DATABASE_URL"] = re.sub(r"\bhost=postgres\b", "host=" + pg.sock, sn["SN_DATABASE_URL"])
        sn["SN_KAFKA_BOOTSTRAP_SERVERS"] = kafka.bootstrap
        sn["SN_HTTP_LISTEN"] = "127.0.0.1:0"
        sn["SN_KAFKA_GROUP_ID"] = "deploy-test"
        for k, v in sn.items():
            check("/run/" not in v and "/usr/share/sn-broker" not in v, "%s: %s maps to this machine" % (name, k),
                  None, v)
        started.append(Broker(embedded=False, name=name, env=sn).start())
    for b in started:
        b.wait_ready(20)

    def roles():
        states = sorted(b.readyz()[1]["checks"]["rule_engine"]["detail"] for b in started)
        return states if states == ["evaluating", "standby"] else None
    wait_for(roles, 15, "one broker to evaluate the rules and the other to stand by")
    for b in started:
        msgs = [l.get("msg") for l in b.logs()]
        check("rules loaded" in msgs, "%s loaded the image's rules" % b.dir, None, msgs)

    token_file = os.path.join(work, "admin.token")
    r = subprocess.run([os.path.join(DEPLOY, "compose", "create-admin-token.sh"), token_file,
                        "psql", pg.conninfo("sn_broker")], capture_output=True, text=True, timeout=30)
    check(r.returncode == 0, "create-admin-token.sh", 0, r.stdout + r.stderr)
    token = open(token_file).read()
    check(token.strip() not in r.stdout + r.stderr, "the token is not printed")
    check(os.stat(token_file).st_mode & 0o777 == 0o600, "the token file has mode 0600", "0o600",
          oct(os.stat(token_file).st_mode & 0o777))
    check(re.fullmatch(r"sn_[A-Za-z0-9_-]{43}\n", token), "the token has the broker's form", "sn_ + 43", token)
    for b in started:
        r = subprocess.run([SNCTL, "--url", "http://" + b.address, "--token-file", token_file, "token", "list"],
                           capture_output=True, text=True, timeout=10)
        check(r.returncode == 0 and "admin" in r.stdout, "the new admin token works on %s" % b.dir, "admin",
              r.stdout + r.stderr)
    r = subprocess.run([os.path.join(DEPLOY, "compose", "create-admin-token.sh"), token_file,
                        "psql", pg.conninfo("sn_broker")], capture_output=True, text=True, timeout=30)
    check(r.returncode != 0 and open(token_file).read() == token, "an existing token file is not overwritten")
    for b in started:
        check(b.stop(signal.SIGTERM, timeout=10) == 0, "SIGTERM stops %s cleanly within 10 s" % b.dir)
