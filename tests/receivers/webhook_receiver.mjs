// A webhook receiver for the integration tests and the delivery benchmark.
//
// It checks every request's Standard Webhooks signature with the official JS
// implementation (the `standardwebhooks` package), so the broker's signing is
// judged by code that is not ours. What each path answers is scripted over a
// control API on the same server.
//
//   node tests/receivers/webhook_receiver.mjs [--log FILE] [--host 127.0.0.1] [--port 0]
//
// Prints {"port": N} on stdout once listening. Control API:
//   POST /_control/config    {"path", "secrets": [...], "script": [step...], "default": step}
//   GET  /_control/requests  [?path=/a]  -> the recorded requests, oldest first
//   POST /_control/verify    {"secret", "headers", "body"} -> {"ok", "error"}
//   POST /_control/reset     clears the recordings (configs stay)
// A step: {status, headers, body, delay_ms, close, close_mid_reply}.

import fs from "node:fs";
import http from "node:http";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const { Webhook } = require("standardwebhooks");

function parseArgs(argv)
{
    const opts = { log: null, host: "127.0.0.1", port: 0 };
    for (let i = 0; i < argv.length; i++) {
        const arg = argv[i];
        const value = () => {
            if (i + 1 >= argv.length) usage(`${arg} needs a value`);
            return argv[++i];
        };
        if (arg === "--log") opts.log = value();
        else if (arg === "--host") opts.host = value();
        else if (arg === "--port") opts.port = Number(value());
        else usage(`unknown argument ${arg}`);
    }
    return opts;
}

function usage(msg)
{
    process.stderr.write(`webhook_receiver: ${msg}\n` +
                         "usage: node webhook_receiver.mjs [--log FILE] [--host H] [--port N]\n");
    process.exit(2);
}

const opts = parseArgs(process.argv.slice(2));
const logFd = opts.log ? fs.openSync(opts.log, "a") : null;

// path -> {secrets, script, next, default}
const configs = new Map();
let recordings = [];

const DEFAULT_STEP = { status: 200 };

function validateStep(step, what)
{
    if (typeof step !== "object" || step === null || Array.isArray(step))
        return `${what} must be an object`;
    if (step.status !== undefined &&
        !(Number.isInteger(step.status) && step.status >= 100 && step.status <= 999))
        return `${what}.status must be an integer 100..999`;
    if (step.headers !== undefined &&
        (typeof step.headers !== "object" || step.headers === null || Array.isArray(step.headers)))
        return `${what}.headers must be an object`;
    if (step.delay_ms !== undefined && !(Number.isFinite(step.delay_ms) && step.delay_ms >= 0))
        return `${what}.delay_ms must be a non-negative number`;
    if (step.body !== undefined && typeof step.body !== "string")
        return `${what}.body must be a string`;
    return null;
}

function nextStep(path)
{
    const conf = configs.get(path);
    if (!conf) return DEFAULT_STEP;
    if (conf.next < conf.script.length) return conf.script[conf.next++];
    return conf.default;
}

// Verifies with each secret in turn; the first success wins. The library's
// own JSON parse of the payload is turned off: "verified" is about the
// signature, and a test that cares about the body parses it itself.
function verify(secrets, rawBody, headers)
{
    if (!secrets || secrets.length === 0)
        return { ok: false, error: "no secret configured for this path" };
    let error = null;
    for (const secret of secrets) {
        try {
            new Webhook(secret).verify(rawBody, headers, { jsonParse: false });
            return { ok: true, error: null };
        } catch (e) {
            error = e && e.message ? e.message : String(e);
        }
    }
    return { ok: false, error };
}

function record(entry)
{
    recordings.push(entry);
    // Written synchronously so the line is in the file before the reply goes out.
    if (logFd !== null) fs.writeSync(logFd, JSON.stringify(entry) + "\n");
}

function replyJson(res, status, value)
{
    const body = JSON.stringify(value);
    res.writeHead(status, {
        "Content-Type": "application/json",
        "Content-Length": Buffer.byteLength(body),
    });
    res.end(body);
}

function readBody(req)
{
    return new Promise((resolve, reject) => {
        const chunks = [];
        req.on("data", (chunk) => chunks.push(chunk));
        req.on("end", () => resolve(Buffer.concat(chunks)));
        req.on("error", reject);
        req.on("close", () => {
            if (!req.complete) reject(new Error("client went away mid-request"));
        });
    });
}

function parseJsonBody(raw)
{
    try {
        return { value: JSON.parse(raw.toString("utf8")), error: null };
    } catch (e) {
        return { value: null, error: `invalid JSON: ${e.message}` };
    }
}

function handleControl(req, res, url, raw)
{
    const route = `${req.method} ${url.pathname}`;
    if (route === "GET /_control/requests") {
        const path = url.searchParams.get("path");
        replyJson(res, 200, path === null ? recordings : recordings.filter((r) => r.path === path));
        return;
    }
    if (route === "POST /_control/reset") {
        recordings = [];
        replyJson(res, 200, { ok: true });
        return;
    }
    if (route === "POST /_control/config") {
        const { value, error } = parseJsonBody(raw);
        if (error) return replyJson(res, 400, { ok: false, error });
        if (!value || typeof value.path !== "string" || !value.path.startsWith("/"))
            return replyJson(res, 400, { ok: false, error: "path must start with /" });
        if (value.path.startsWith("/_control"))
            return replyJson(res, 400, { ok: false, error: "/_control paths are reserved" });
        const secrets = value.secrets ?? [];
        if (!Array.isArray(secrets) || !secrets.every((s) => typeof s === "string"))
            return replyJson(res, 400, { ok: false, error: "secrets must be an array of strings" });
        const script = value.script ?? [];
        if (!Array.isArray(script))
            return replyJson(res, 400, { ok: false, error: "script must be an array" });
        for (let i = 0; i < script.length; i++) {
            const err = validateStep(script[i], `script[${i}]`);
            if (err) return replyJson(res, 400, { ok: false, error: err });
        }
        const err = value.default === undefined ? null : validateStep(value.default, "default");
        if (err) return replyJson(res, 400, { ok: false, error: err });
        configs.set(value.path, {
            secrets,
            script,
            next: 0,
            default: value.default ?? DEFAULT_STEP,
        });
        replyJson(res, 200, { ok: true });
        return;
    }
    if (route === "POST /_control/verify") {
        const { value, error } = parseJsonBody(raw);
        if (error) return replyJson(res, 400, { ok: false, error });
        if (!value || typeof value.secret !== "string" || typeof value.body !== "string" ||
            typeof value.headers !== "object" || value.headers === null)
            return replyJson(res, 400, {
                ok: false,
                error: "expected {secret: string, headers: object, body: string}",
            });
        replyJson(res, 200, verify([value.secret], Buffer.from(value.body, "utf8"), value.headers));
        return;
    }
    replyJson(res, 404, { ok: false, error: `no control route ${route}` });
}

function answer(req, res, step)
{
    const status = step.status ?? 200;
    if (step.close) {
        req.socket.destroy();
        return;
    }
    if (step.close_mid_reply) {
        // The status line and a few headers promising a body, then nothing:
        // the client sees a reply cut short, not a refused connection.
        const head = `HTTP/1.1 ${status} Scripted\r\n` + "Content-Type: application/json\r\n" +
                     "Content-Length: 1000\r\n";
        req.socket.write(head, () => req.socket.destroy());
        return;
    }
    const body = step.body ?? "";
    const headers = { "Content-Length": Buffer.byteLength(body) };
    for (const [name, value] of Object.entries(step.headers ?? {})) headers[name] = String(value);
    res.writeHead(status, headers);
    res.end(body);
}

async function handle(req, res)
{
    const receivedAt = Date.now();
    const url = new URL(req.url, "http://receiver");
    let raw;
    try {
        raw = await readBody(req);
    } catch {
        return;
    }
    if (url.pathname.startsWith("/_control/")) {
        handleControl(req, res, url, raw);
        return;
    }
    const path = url.pathname;
    const conf = configs.get(path);
    const step = nextStep(path);
    const result = verify(conf ? conf.secrets : [], raw, req.headers);
    record({
        path,
        received_at_ms: receivedAt,
        method: req.method,
        headers: req.headers,
        body: raw.toString("utf8"),
        verified: result.ok,
        verify_error: result.error,
        answered: step.close || step.close_mid_reply ? "close" : (step.status ?? 200),
    });
    if (step.delay_ms) setTimeout(() => answer(req, res, step), step.delay_ms);
    else answer(req, res, step);
}

const server = http.createServer((req, res) => {
    handle(req, res).catch((e) => {
        process.stderr.write(`webhook_receiver: ${e && e.stack ? e.stack : e}\n`);
        if (!res.headersSent) replyJson(res, 500, { ok: false, error: String(e) });
    });
});
// A client that keeps connections alive between deliveries should not see them
// closed under it, and a scripted hang must not be cut short by the server.
server.keepAliveTimeout = 60000;
server.headersTimeout = 65000;
server.requestTimeout = 0;
server.on("clientError", (err, socket) => {
    if (socket.writable) socket.end("HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n");
    else socket.destroy();
});

for (const sig of ["SIGTERM", "SIGINT"]) {
    process.on(sig, () => {
        if (logFd !== null) fs.closeSync(logFd);
        process.exit(0);
    });
}

server.listen({ host: opts.host, port: opts.port, backlog: 1024 }, () => {
    process.stdout.write(JSON.stringify({ port: server.address().port }) + "\n");
});
