// The suite's plumbing: the standalone binary under a test config, a
// recording tap in front of it (so a failing check can print every request
// and answer it caused), a static server for the browser page, and checks.

import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync, readFileSync, existsSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { join, normalize, extname, sep } from "node:path";

/** Everything the taps recorded, in order, across all servers. */
const exchanges = [];

/** A server that forwards every request to `target` and records the exchange. */
function startTap(name, target) {
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on("data", (chunk) => chunks.push(chunk));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      const exchange = {
        server: name,
        method: req.method,
        path: req.url,
        requestHeaders: req.headers,
        requestBody: body.toString("utf8"),
        status: "no answer",
        responseHeaders: {},
        responseBody: "",
      };
      exchanges.push(exchange);
      const upstream = http.request(
        { host: target.host, port: target.port, method: req.method, path: req.url, headers: req.headers },
        (answer) => {
          const parts = [];
          answer.on("data", (chunk) => parts.push(chunk));
          answer.on("end", () => {
            const payload = Buffer.concat(parts);
            exchange.status = answer.statusCode;
            exchange.responseHeaders = answer.headers;
            exchange.responseBody = payload.toString("utf8");
            const headers = [];
            for (let i = 0; i < answer.rawHeaders.length; i += 2) {
              const header = answer.rawHeaders[i].toLowerCase();
              if (header !== "transfer-encoding" && header !== "content-length") {
                headers.push(answer.rawHeaders[i], answer.rawHeaders[i + 1]);
              }
            }
            headers.push("content-length", String(payload.length));
            res.writeHead(answer.statusCode, headers);
            res.end(payload);
          });
        },
      );
      upstream.on("error", (err) => {
        exchange.status = `tap could not reach the server: ${err.message}`;
        res.writeHead(502, { "content-type": "text/plain" });
        res.end(exchange.status);
      });
      upstream.end(body);
    });
  });
  return listen(server);
}

function listen(server) {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve(server));
  });
}

/**
 * Starts the standalone binary with `toml` as its config file, behind a tap
 * (`extraEnv` added to its environment).
 * Resolves to { name, origin (the tap's), base (Data API base URL via the tap),
 * stop(), log() }.
 */
export async function startStandalone(binary, name, toml, appId, extraEnv = {}) {
  const dir = mkdtempSync(join(tmpdir(), "tda-clients-"));
  const configPath = join(dir, `${name}.toml`);
  writeFileSync(configPath, toml);
  const env = { ...process.env, RUST_LOG: process.env.RUST_LOG ?? "warn", ...extraEnv };
  delete env.MONGODB_URI;
  const child = spawn(binary, ["--listen", "127.0.0.1:0", "--config", configPath], {
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stderr.on("data", (chunk) => (stderr += chunk));
  const address = await new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${name}: no banner within 30 s\nstdout: ${stdout}\nstderr: ${stderr}`)),
      30_000,
    );
    child.stdout.on("data", (chunk) => {
      stdout += chunk;
      const listening = stdout.match(/listening on http:\/\/([0-9.]+):(\d+)/);
      if (listening && stdout.includes("Data API base URL:")) {
        clearTimeout(timer);
        resolve({ host: listening[1], port: Number(listening[2]) });
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${name}: the standalone binary exited (${code}) before serving\nstderr: ${stderr}`));
    });
  });
  child.removeAllListeners("exit");
  const tap = await startTap(name, address);
  const origin = `http://127.0.0.1:${tap.address().port}`;
  return {
    name,
    origin,
    base: `${origin}/app/${appId}/endpoint/data/v1`,
    log: () => stderr,
    async stop() {
      tap.close();
      tap.closeAllConnections();
      if (child.exitCode === null) {
        const exited = new Promise((resolve) => child.once("exit", resolve));
        child.kill("SIGTERM");
        await exited;
      }
    },
  };
}

/** Runs the binary with a config it must refuse; resolves to { code, stderr }. */
export function runToFailure(binary, toml) {
  const dir = mkdtempSync(join(tmpdir(), "tda-clients-"));
  const configPath = join(dir, "refused.toml");
  writeFileSync(configPath, toml);
  return new Promise((resolve) => {
    const child = spawn(binary, ["--listen", "127.0.0.1:0", "--config", configPath], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (chunk) => (stderr += chunk));
    const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stderr });
    });
  });
}

const CONTENT_TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".map": "application/json",
};

/** Serves `root/page/` at `/` and `root/node_modules/` at `/node_modules/`. */
export async function startPageServer(root) {
  const server = http.createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url, "http://x").pathname);
    const relative = path === "/" ? "page/index.html" : path.startsWith("/node_modules/") ? path.slice(1) : `page${path}`;
    const file = normalize(join(root, relative));
    if (!file.startsWith(root + sep) || !existsSync(file) || !CONTENT_TYPES[extname(file)]) {
      res.writeHead(404, { "content-type": "text/plain" });
      res.end(`not found: ${path}`);
      return;
    }
    res.writeHead(200, { "content-type": CONTENT_TYPES[extname(file)], "cache-control": "no-store" });
    res.end(readFileSync(file));
  });
  await listen(server);
  return { server, origin: `http://127.0.0.1:${server.address().port}` };
}

const SHOWN_HEADERS = [
  "origin",
  "content-type",
  "accept",
  "authorization",
  "access-control-request-method",
  "access-control-request-headers",
  "access-control-allow-origin",
  "access-control-allow-headers",
  "vary",
];
const CREDENTIALS = new Set(["apikey", "api-key", "password", "jwttokenstring"]);

function clip(text, max = 1500) {
  return text.length > max ? `${text.slice(0, max)}… (${text.length} bytes)` : text;
}

function describe(exchange) {
  const lines = [`    ${exchange.method} ${exchange.path} -> ${exchange.status}   [${exchange.server}]`];
  const sent = Object.keys(exchange.requestHeaders).filter((h) => CREDENTIALS.has(h));
  const shown = (headers) =>
    SHOWN_HEADERS.filter((h) => headers[h] !== undefined)
      .map((h) => `${h}: ${h === "authorization" ? `${String(headers[h]).slice(0, 16)}…` : headers[h]}`)
      .concat(sent.length && headers === exchange.requestHeaders ? [`credential headers: ${sent.join(", ")}`] : [])
      .join("; ");
  lines.push(`      request headers:  ${shown(exchange.requestHeaders)}`);
  if (exchange.requestBody) lines.push(`      request body:     ${clip(exchange.requestBody)}`);
  lines.push(`      response headers: ${shown(exchange.responseHeaders)}`);
  if (exchange.responseBody) lines.push(`      response body:    ${clip(exchange.responseBody)}`);
  return lines.join("\n");
}

const results = [];

/** Exchanges recorded since `mark` (an index from `mark()`). */
export function since(mark) {
  return exchanges.slice(mark);
}

export function mark() {
  return exchanges.length;
}

/**
 * One check: runs `fn`; on failure prints the error and every request the
 * servers saw while it ran (method, path, status, bodies), or those `seen()`
 * returns when given.
 */
export async function check(name, fn, { timeoutMs = 30_000, seen: shown } = {}) {
  const start = mark();
  const started = Date.now();
  let timer;
  try {
    await Promise.race([
      fn(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
    results.push({ name, ok: true });
    console.log(`ok    ${name} (${Date.now() - started} ms)`);
  } catch (err) {
    results.push({ name, ok: false });
    console.log(`FAIL  ${name}`);
    console.log(`  error: ${describeError(err)}`);
    const seen = shown ? shown() : since(start);
    if (seen.length === 0) {
      console.log("  no request reached the server during this check");
    } else {
      console.log(`  what the servers saw during this check (${seen.length} requests):`);
      for (const exchange of seen) console.log(describe(exchange));
    }
  } finally {
    clearTimeout(timer);
  }
}

function describeError(err) {
  if (err && typeof err === "object" && !(err instanceof Error)) {
    // Clients that reject with plain objects (axios' toJSON()).
    try {
      return clip(JSON.stringify(err), 3000);
    } catch {
      return String(err);
    }
  }
  return (err && err.stack) || String(err);
}

export function summary() {
  const passed = results.filter((r) => r.ok).length;
  const failed = results.length - passed;
  return { passed, failed, total: results.length };
}
