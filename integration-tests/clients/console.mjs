// The admin console in a real browser (issue 16): Chromium, driven by
// puppeteer-core, against the standalone binary with `[console]` on.
// Logs in as an administrator, creates a key and copies it, uses it for a
// Data API call from here, finds the call in the Logs page and the usage
// chart, sets the data source to Read Only and sees a write refused, deletes
// the key and sees it refused; a non-admin is refused; a form post without
// its CSRF token is refused; responses carry the CSP. Screenshots of each
// page go to <target>/console-screenshots/ (CI artefacts, not committed).

import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import puppeteer from "puppeteer-core";

import { check, startStandalone } from "./harness.mjs";

const APP = "data-console";
const SOURCE = "mongodb-atlas";
const ADMIN = "ops@example.com";
const ADMIN_PASSWORD = "console-admin-password-9f3a";
const USER = "user@example.com";
const USER_PASSWORD = "console-user-password-2b7c";
const CSP =
  "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; " +
  "form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const CONFIG = `
app_id = "${APP}"

[[data_sources]]
name = "${SOURCE}"
uri = "memory"

[[users]]
email = "${ADMIN}"
password = "${ADMIN_PASSWORD}"

[[users]]
email = "${USER}"
password = "${USER_PASSWORD}"

[state]
uri = "memory"

[console]
enabled = true
admins = ["${ADMIN}"]
`;

/** A Data API call from outside the browser: { status, json }. */
async function dataApi(server, key, action, body) {
  const response = await fetch(`${server.base}/action/${action}`, {
    method: "POST",
    headers: { apiKey: key, "content-type": "application/json" },
    body: JSON.stringify({ dataSource: SOURCE, database: "console", collection: "tasks", ...body }),
  });
  return { status: response.status, json: await response.json() };
}

/** Runs the console checks; `chromium` is the browser binary. */
export async function runConsole({ binary, chromium, targetDir }) {
  const shots = join(targetDir, "console-screenshots");
  mkdirSync(shots, { recursive: true });
  let server;
  try {
    // Info level: every request and console action is logged, for the leak check.
    server = await startStandalone(binary, "console", CONFIG, APP, { RUST_LOG: "info" });
  } catch (err) {
    await check("console: the standalone starts with [console]", async () => {
      throw err;
    });
    return;
  }
  const profileDir = mkdtempSync(join(tmpdir(), "tda-console-chromium-"));
  const browser = await puppeteer.launch({
    executablePath: chromium,
    headless: "shell",
    userDataDir: profileDir,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  const console_ = `${server.origin}/console/`;
  await browser.defaultBrowserContext().overridePermissions(server.origin, ["clipboard-read", "clipboard-write"]);
  const tab = await browser.newPage();
  await tab.setViewport({ width: 1200, height: 800 });
  const problems = [];
  tab.on("pageerror", (err) => problems.push(`page error: ${err.message}`));
  // A refused login answers 401, which Chromium reports too: only CSP
  // violations and script errors count.
  tab.on("console", (msg) => {
    if (msg.type() === "error" && !/status of 401/.test(msg.text())) problems.push(`console error: ${msg.text()}`);
  });
  // Headless Chromium has no system clipboard to read back: record what the
  // page hands to the Clipboard API (and still pass it on).
  await tab.evaluateOnNewDocument(() => {
    const clipboard = navigator.clipboard;
    if (!clipboard) return;
    const write = clipboard.writeText.bind(clipboard);
    clipboard.writeText = async (text) => {
      window.__copied = text;
      try {
        await write(text);
      } catch {
        // The recording is what the check reads.
      }
    };
  });
  const shot = (name) => tab.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
  const state = {};

  async function login(email, password) {
    await tab.goto(console_, { waitUntil: "load" });
    assert.match(tab.url(), /\/console\/login$/, "an anonymous visit lands on the login page");
    await tab.type("#email", email);
    await tab.type("#password", password);
    const [response] = await Promise.all([tab.waitForNavigation({ waitUntil: "load" }), tab.click("#login")]);
    return response;
  }

  try {
    await check("console: a non-admin with the right password is refused", async () => {
      const response = await login(USER, USER_PASSWORD);
      assert.equal(response.status(), 401);
      const message = await tab.$eval("#login-message", (el) => el.textContent);
      assert.match(message, /not an administrator/);
      await shot("login-refused");
      const keys = await fetch(`${server.origin}/console/keys`, { redirect: "manual" });
      assert.equal(keys.status, 303, "no session: the pages redirect to the login");
    });

    await check("console: the admin logs in and sees the Overview with the CSP", async () => {
      const response = await login(ADMIN, ADMIN_PASSWORD);
      assert.equal(response.status(), 200);
      assert.match(tab.url(), /\/console\/$/);
      assert.equal(response.headers()["content-security-policy"], CSP);
      assert.equal(response.headers()["x-frame-options"], "DENY");
      assert.equal(response.headers()["cache-control"], "no-store");
      assert.equal(await tab.$eval("#app-id", (el) => el.textContent), APP);
      const curl = await tab.$eval("#curl", (el) => el.value);
      assert.match(curl, new RegExp(`/app/${APP}/endpoint/data/v1/action/find`));
      await shot("overview");
    });

    await check("console: a key is created, shown once and copied with the copy button", async () => {
      await tab.goto(`${console_}keys`, { waitUntil: "load" });
      await tab.type("#key-name", "browser-key");
      await Promise.all([tab.waitForNavigation({ waitUntil: "load" }), tab.click("#create-key")]);
      const key = await tab.$eval("#new-key", (el) => el.value);
      assert.match(key, /^[A-Za-z0-9]{64}$/);
      await shot("key-created");
      await tab.click('button.copy[data-copy="new-key"]');
      await tab.waitForFunction(
        () => document.querySelector('button.copy[data-copy="new-key"]').textContent !== "Copy",
        { timeout: 5_000 },
      );
      assert.equal(
        await tab.$eval('button.copy[data-copy="new-key"]', (el) => el.textContent),
        "Copied",
      );
      const copied = await tab.evaluate(() => window.__copied);
      assert.equal(copied, key, "the copy button handed the key to the clipboard");
      state.key = copied;
      await tab.goto(`${console_}keys`, { waitUntil: "load" });
      const html = await tab.content();
      assert.ok(html.includes('data-key="browser-key"'), "the key is listed");
      assert.ok(!html.includes(key), "the key is not shown again");
    });

    await check("console: the key works from outside and its calls are in the Logs page", async () => {
      const insert = await dataApi(server, state.key, "insertOne", { document: { text: "from the console test" } });
      assert.equal(insert.status, 201, JSON.stringify(insert.json));
      const refused = await dataApi(server, "not-a-key", "find", { filter: {} });
      assert.equal(refused.status, 401);
      state.link = refused.json.link;
      assert.match(state.link, /^\/console\/logs\?co_id=[0-9a-f]{24}$/);
      let found = false;
      for (let i = 0; i < 30 && !found; i++) {
        await tab.goto(`${console_}logs?who=browser-key`, { waitUntil: "load" });
        found = (await tab.$$eval("#logs tbody tr", (rows) => rows.map((r) => r.textContent))).some((t) =>
          t.includes("insertOne"),
        );
        if (!found) await new Promise((r) => setTimeout(r, 200));
      }
      assert.ok(found, "the insertOne call is listed for browser-key");
      await shot("logs");
      await tab.goto(`${server.origin}${state.link}`, { waitUntil: "load" });
      const detail = await tab.$eval("#detail", (el) => el.textContent);
      assert.match(detail, /InvalidSession/);
      assert.match(detail, /401/);
      await shot("log-detail");
    });

    await check("console: the call shows in the usage chart", async () => {
      await tab.goto(`${console_}usage?by=key&step=hour`, { waitUntil: "networkidle0" });
      const loaded = await tab.$eval("#chart-requests", (img) => img.complete && img.naturalWidth > 0);
      assert.ok(loaded, "the requests chart is drawn");
      // The page itself cannot fetch (its CSP has no connect-src): read the
      // chart with the browser's session cookie from here.
      const session = (await browser.cookies()).find((c) => c.name === "tda_console");
      const svg = await fetch(`${console_}usage.svg?by=key&step=hour&metric=requests`, {
        headers: { cookie: `tda_console=${session.value}` },
      }).then((r) => r.text());
      assert.match(svg, /^<svg/);
      assert.match(svg, /browser-key/, "the key's line is in the chart");
      const totals = await tab.$eval("#usage-totals", (el) => el.textContent);
      assert.match(totals, /browser-key/);
      await shot("usage");
    });

    await check("console: Read Only set on the Data sources page refuses a write", async () => {
      await tab.goto(`${console_}sources`, { waitUntil: "load" });
      await tab.select(`#source-${SOURCE} select[name=access]`, "read-only");
      await Promise.all([
        tab.waitForNavigation({ waitUntil: "load" }),
        tab.click(`#source-${SOURCE} button[type=submit]`),
      ]);
      await shot("sources-read-only");
      const write = await dataApi(server, state.key, "insertOne", { document: { text: "refused" } });
      assert.equal(write.status, 403, JSON.stringify(write.json));
      assert.equal(write.json.error_code, "PermissionDenied");
      const read = await dataApi(server, state.key, "find", { filter: {} });
      assert.equal(read.status, 200);
      await tab.select(`#source-${SOURCE} select[name=access]`, "read-write");
      await Promise.all([
        tab.waitForNavigation({ waitUntil: "load" }),
        tab.click(`#source-${SOURCE} button[type=submit]`),
      ]);
      assert.equal((await dataApi(server, state.key, "insertOne", { document: { n: 2 } })).status, 201);
    });

    await check("console: the Users page lists users and their roles", async () => {
      await tab.goto(`${console_}users`, { waitUntil: "load" });
      const users = await tab.$eval("#users", (el) => el.textContent);
      assert.match(users, new RegExp(ADMIN.replace(".", "\\.")));
      assert.match(users, /administrator/);
      await shot("users");
    });

    await check("console: a form post without its CSRF token is refused", async () => {
      const cookies = await browser.cookies();
      const session = cookies.find((c) => c.name === "tda_console");
      assert.ok(session, "the session cookie is set");
      assert.ok(session.httpOnly, "HttpOnly");
      assert.equal(session.sameSite, "Strict");
      const response = await fetch(`${server.origin}/console/keys`, {
        method: "POST",
        redirect: "manual",
        headers: { cookie: `tda_console=${session.value}`, "content-type": "application/x-www-form-urlencoded" },
        body: "op=delete&name=browser-key",
      });
      assert.equal(response.status, 403);
      assert.equal(response.headers.get("content-security-policy"), CSP);
      assert.equal((await dataApi(server, state.key, "find", { filter: {} })).status, 200, "the key still works");
    });

    await check("console: a deleted key is refused", async () => {
      await tab.goto(`${console_}keys`, { waitUntil: "load" });
      await Promise.all([
        tab.waitForNavigation({ waitUntil: "load" }),
        tab.click('tr[data-key="browser-key"] button[value="delete"]'),
      ]);
      const html = await tab.content();
      assert.ok(!html.includes('data-key="browser-key"'), "the key is gone from the list");
      await shot("key-deleted");
      const after = await dataApi(server, state.key, "find", { filter: {} });
      assert.equal(after.status, 401);
    });

    await check("console: no page broke the CSP or threw", async () => {
      assert.deepEqual(problems, []);
    });

    await check("console: the server's log holds no key or password", async () => {
      const log = server.log();
      assert.ok(state.key && !log.includes(state.key), "the created key is not logged");
      assert.ok(!log.includes(ADMIN_PASSWORD) && !log.includes(USER_PASSWORD), "no password is logged");
      assert.match(log, /API key created/, "console actions are logged (so the check means something)");
    });
  } finally {
    await browser.close();
    rmSync(profileDir, { recursive: true, force: true });
    await server.stop();
  }
  console.log(`console screenshots: ${shots}`);
}
