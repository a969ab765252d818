// Real, unmodified clients against the standalone binary (issue 18):
// mongodb-data-api, @taskless/mongo-data-api, realm-web, plain HTTP requests
// as in the docs' curl examples, a page in Chromium on another origin, and
// the admin console clicked through in Chromium (console.mjs).
//
//   node run.mjs            (after `npm ci` here and `cargo build --example standalone`)
//
// Environment: STANDALONE_BIN (default <target>/debug/examples/standalone),
// CARGO_TARGET_DIR, CHROMIUM_BIN (default /usr/bin/chromium-headless-shell or
// /usr/bin/chromium), DATA_API_TEST_MONGODB_URI (the peer, for the
// shared-state checks; DATA_API_TEST_NO_PEER=1 skips them on purpose). Ends with "N passed, M failed"; exits 1 on any failure.

import assert from "node:assert/strict";
import { existsSync, mkdtempSync, mkdirSync, rmSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { createMongoDBDataAPI } from "mongodb-data-api";
import { MongoClient, ObjectId } from "@taskless/mongo-data-api";
import * as Realm from "realm-web";
import puppeteer from "puppeteer-core";

import { check, mark, since, startPageServer, startStandalone, runToFailure, summary } from "./harness.mjs";
import { sharedStateChecks } from "./shared_state.mjs";
import { runConsole } from "./console.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "../..");
const targetDir = process.env.CARGO_TARGET_DIR ? resolve(root, process.env.CARGO_TARGET_DIR) : join(root, "target");
const binary = process.env.STANDALONE_BIN ?? join(targetDir, "debug", "examples", "standalone");
const chromium =
  process.env.CHROMIUM_BIN ??
  ["/usr/bin/chromium-headless-shell", "/usr/bin/chromium"].find((path) => existsSync(path));

function fatal(message) {
  console.error(`clients: ${message}`);
  process.exit(1);
}
if (!existsSync(binary)) fatal(`${binary} is missing: build it with \`cargo build --example standalone\``);
if (!chromium || !existsSync(chromium)) {
  fatal("no Chromium: install Debian's chromium-headless-shell (or chromium), or set CHROMIUM_BIN");
}

const APP = "data-clients";
const SOURCE = "mongodb-atlas";
const KEY = "clients-suite-api-key-5f0c2a9e7b3d41c6a8e2f1d0b9c7a6e5";
const EMAIL = "ada@example.com";
const PASSWORD = "correct horse battery staple";
const SIGNING = "clients-suite-signing-key-0b1c2d3e4f5a6b7c8d9e0f1a2b3c";
const started = Date.now();

const page = await startPageServer(here);

function config({ format, credentialHeaders, accessLifetime }) {
  return `
app_id = "${APP}"
default_format = "${format}"
user_registration = true
cors_allowed_origins = ["${page.origin}"]
cors_allow_credential_headers = ${credentialHeaders}

[[data_sources]]
name = "${SOURCE}"
uri = "memory"

[[api_keys]]
name = "suite"
key = "${KEY}"

[[users]]
email = "${EMAIL}"
password = "${PASSWORD}"

[sessions]
signing_keys = [{ kid = "suite", key = "${SIGNING}" }]
access_token_lifetime_secs = ${accessLifetime}
`;
}

// A: JSON by default, credential headers refused cross-origin, access tokens
// that expire after 2 s (plus the server's 5 s leeway), so realm-web must refresh.
// B: EJSON by default, credential headers allowed cross-origin.
const servers = [];
let a;
let b;
try {
  a = await startStandalone(binary, "json", config({ format: "json", credentialHeaders: false, accessLifetime: 2 }), APP);
  servers.push(a);
  b = await startStandalone(binary, "ejson", config({ format: "ejson", credentialHeaders: true, accessLifetime: 1800 }), APP);
  servers.push(b);
} catch (err) {
  for (const server of servers) await server.stop();
  page.server.close();
  fatal(err.message);
}

const clientApi = (server) => `${server.origin}/api/client/v2.0`;

/** A plain request, as curl sends it. */
function request(method, url, { headers = {}, body } = {}) {
  return new Promise((resolvePromise, reject) => {
    const req = http.request(url, { method, headers }, (res) => {
      const chunks = [];
      res.on("data", (chunk) => chunks.push(chunk));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        let json;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolvePromise({ status: res.statusCode, headers: res.headers, text, json });
      });
    });
    req.on("error", reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

/** Logs in through the client API; the login answer. */
async function login(server, provider, body) {
  const answer = await request("POST", `${clientApi(server)}/app/${APP}/auth/providers/${provider}/login`, {
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  assert.equal(answer.status, 200, `login via ${provider}: ${answer.text}`);
  return answer.json;
}

function unwrapTaskless(what, { data, error }) {
  if (error) throw new Error(`${what}: ${error.code} ${error.message}`);
  return data;
}

// --- mongodb-data-api 0.4.0 -------------------------------------------------

await check("mongodb-data-api: every action with api-key", async () => {
  const api = createMongoDBDataAPI({ apiKey: KEY, urlEndpoint: a.base });
  const tasks = api.$cluster(SOURCE).$database("surmon").$collection("tasks");
  const one = await tasks.insertOne({ document: { text: "one", n: 1 } });
  assert.equal(typeof one.insertedId, "string");
  const many = await tasks.insertMany({ documents: [{ text: "two", n: 2 }, { text: "three", n: 3 }] });
  assert.equal(many.insertedIds.length, 2);
  const found = await tasks.findOne({ filter: { n: 1 }, projection: { _id: 0 } });
  assert.deepEqual(found.document, { text: "one", n: 1 });
  const all = await tasks.find({ filter: {}, sort: { n: -1 }, projection: { _id: 0, n: 1 } });
  assert.deepEqual(all.documents, [{ n: 3 }, { n: 2 }, { n: 1 }]);
  assert.deepEqual(await tasks.updateOne({ filter: { n: 1 }, update: { $set: { done: true } } }), {
    matchedCount: 1,
    modifiedCount: 1,
  });
  assert.deepEqual(await tasks.updateMany({ filter: { n: { $gt: 1 } }, update: { $inc: { n: 10 } } }), {
    matchedCount: 2,
    modifiedCount: 2,
  });
  assert.deepEqual(await tasks.replaceOne({ filter: { n: 12 }, replacement: { text: "two again", n: 2 } }), {
    matchedCount: 1,
    modifiedCount: 1,
  });
  const grouped = await tasks.aggregate({ pipeline: [{ $group: { _id: null, total: { $sum: "$n" } } }] });
  assert.deepEqual(grouped.documents, [{ _id: null, total: 1 + 2 + 13 }]);
  assert.deepEqual(await tasks.deleteOne({ filter: { n: 1 } }), { deletedCount: 1 });
  assert.deepEqual(await tasks.deleteMany({ filter: {} }), { deletedCount: 2 });
  // The action shortcut the client exposes for anything else.
  const none = await tasks.$$action("find", { filter: {} });
  assert.deepEqual(none.documents, []);
});

await check("mongodb-data-api: a wrong key is refused", async () => {
  const api = createMongoDBDataAPI({ apiKey: "not-the-key", urlEndpoint: a.base });
  const tasks = api.$cluster(SOURCE).$database("surmon").$collection("tasks");
  const error = await tasks.find({ filter: {} }).then(
    () => null,
    (err) => err,
  );
  assert.ok(error, "the request succeeded");
  assert.equal(error.status, 401, JSON.stringify(error));
});

// --- @taskless/mongo-data-api 0.5.2 -------------------------------------------

/** An inserted id: a hex string under the JSON default, an ObjectId under EJSON. */
function isId(id, ejson) {
  return ejson ? id instanceof ObjectId : typeof id === "string" && /^[0-9a-f]{24}$/.test(id);
}

async function allTenActions(collection, label, ejson = false) {
  const inserted = unwrapTaskless("insertOne", await collection.insertOne({ label, n: 1 }));
  assert.ok(isId(inserted.insertedId, ejson), `insertedId: ${JSON.stringify(inserted.insertedId)}`);
  const many = unwrapTaskless("insertMany", await collection.insertMany([{ label, n: 2 }, { label, n: 3 }]));
  assert.equal(many.insertedIds.length, 2);
  assert.ok(many.insertedIds.every((id) => isId(id, ejson)), `insertedIds: ${JSON.stringify(many.insertedIds)}`);
  const one = unwrapTaskless("findOne", await collection.findOne({ label, n: 1 }, { projection: { _id: 0 } }));
  assert.deepEqual(one, { label, n: 1 });
  const docs = unwrapTaskless(
    "find",
    await collection.find("named find", { label }, { sort: { n: 1 }, projection: { _id: 0, n: 1 }, limit: 2, skip: 1 }),
  );
  assert.deepEqual(docs, [{ n: 2 }, { n: 3 }]);
  const upd = unwrapTaskless("updateOne", await collection.updateOne({ label, n: 1 }, { $set: { seen: true } }));
  assert.equal(upd.modifiedCount, 1);
  const updMany = unwrapTaskless("updateMany", await collection.updateMany({ label }, { $inc: { n: 100 } }));
  assert.equal(updMany.modifiedCount, 3);
  const upsert = unwrapTaskless(
    "replaceOne",
    await collection.replaceOne({ label, n: 999 }, { label, n: 4 }, { upsert: true }),
  );
  assert.ok(isId(upsert.upsertedId, ejson), `upsertedId: ${JSON.stringify(upsert.upsertedId)}`);
  const sum = unwrapTaskless(
    "aggregate",
    await collection.aggregate([{ $match: { label } }, { $group: { _id: "$label", total: { $sum: "$n" } } }]),
  );
  assert.deepEqual(sum, [{ _id: label, total: 101 + 102 + 103 + 4 }]);
  const del = unwrapTaskless("deleteOne", await collection.deleteOne({ label, n: 4 }));
  assert.equal(del.deletedCount, 1);
  const delMany = unwrapTaskless("deleteMany", await collection.deleteMany({ label }));
  assert.equal(delMany.deletedCount, 3);
}

function taskless(server, auth) {
  return new MongoClient({ endpoint: server.base, dataSource: SOURCE, auth }).db("taskless").collection("items");
}

await check("@taskless/mongo-data-api: all ten actions with an API key", () =>
  allTenActions(taskless(a, { apiKey: KEY }), "api-key"),
);
await check("@taskless/mongo-data-api: all ten actions with email/password", () =>
  allTenActions(taskless(a, { email: EMAIL, password: PASSWORD }), "email"),
);
await check("@taskless/mongo-data-api: all ten actions with a bearer token from the login endpoint", async () => {
  const tokens = await login(a, "local-userpass", { username: EMAIL, password: PASSWORD });
  await allTenActions(taskless(a, { bearerToken: tokens.access_token }), "bearer");
});
await check("@taskless/mongo-data-api: all ten actions with an API key (EJSON default)", () =>
  allTenActions(taskless(b, { apiKey: KEY }), "api-key-ejson", true),
);
await check("@taskless/mongo-data-api: ObjectId and Date round-trip as BSON types (EJSON default)", async () => {
  const items = taskless(b, { apiKey: KEY });
  const id = new ObjectId();
  const when = new Date("2026-12-07T05:00:00.123Z");
  const inserted = unwrapTaskless("insertOne", await items.insertOne({ _id: id, when, owner: new ObjectId(id.toHexString()) }));
  assert.ok(inserted.insertedId instanceof ObjectId, `insertedId is ${JSON.stringify(inserted.insertedId)}`);
  assert.ok(inserted.insertedId.equals(id));
  const found = unwrapTaskless("findOne", await items.findOne({ _id: id, when: { $gte: when } }));
  assert.ok(found, "the document was not found by ObjectId and Date");
  assert.ok(found._id instanceof ObjectId && found._id.equals(id), `_id: ${JSON.stringify(found._id)}`);
  assert.ok(found.owner instanceof ObjectId && found.owner.equals(id), `owner: ${JSON.stringify(found.owner)}`);
  assert.ok(found.when instanceof Date, `when: ${JSON.stringify(found.when)}`);
  assert.equal(found.when.getTime(), when.getTime());
});
await check("@taskless/mongo-data-api: wrong credentials are refused", async () => {
  for (const auth of [
    { apiKey: "not-the-key" },
    { email: EMAIL, password: "wrong password" },
    { bearerToken: "not.a.token" },
  ]) {
    const { data, error } = await taskless(a, auth).findOne({});
    assert.equal(data, undefined, `${Object.keys(auth)}: got data`);
    assert.equal(error?.code, 401, `${Object.keys(auth)}: ${error?.code} ${error?.message}`);
  }
});

// --- realm-web 2.0.1 ------------------------------------------------------------

const realmApp = new Realm.App({ id: APP, baseUrl: a.origin });
let realmUser;

await check("realm-web: /location answers the server's own address", async () => {
  assert.equal(await realmApp.locationUrl, a.origin);
  const answer = await request("GET", `${clientApi(a)}/app/${APP}/location`);
  assert.equal(answer.status, 200);
  assert.equal(answer.json.hostname, a.origin);
});

await check("realm-web: email/password login and profile", async () => {
  realmUser = await realmApp.logIn(Realm.Credentials.emailPassword(EMAIL, PASSWORD));
  assert.equal(typeof realmUser.id, "string");
  assert.equal(realmUser.providerType, "local-userpass");
  assert.equal(realmApp.currentUser?.id, realmUser.id);
  await realmUser.refreshProfile();
  assert.equal(realmUser.profile.email, EMAIL, JSON.stringify(realmUser.profile));
});

await check("realm-web: registerUser creates a user who logs in; a second registration is refused", async () => {
  const app = new Realm.App({ id: APP, baseUrl: a.origin });
  const email = "registered@example.com";
  await app.emailPasswordAuth.registerUser({ email, password: "registered-password" });
  const user = await app.logIn(Realm.Credentials.emailPassword(email, "registered-password"));
  assert.equal(user.providerType, "local-userpass");
  const again = await app.emailPasswordAuth
    .registerUser({ email, password: "registered-password" })
    .then(() => null, (err) => err);
  assert.equal(again?.statusCode, 409, `a second registration: ${again}`);
  assert.equal(again?.errorCode, "AccountNameInUse");
});

await check("realm-web: a Data API call with the access token", async () => {
  const answer = await request("POST", `${a.base}/action/insertOne`, {
    headers: { authorization: `Bearer ${realmUser.accessToken}`, "content-type": "application/json" },
    body: JSON.stringify({ dataSource: SOURCE, database: "realm", collection: "notes", document: { by: realmUser.id } }),
  });
  assert.equal(answer.status, 201, answer.text);
});

await check("realm-web: api-key login", async () => {
  const app = new Realm.App({ id: APP, baseUrl: a.origin });
  const user = await app.logIn(Realm.Credentials.apiKey(KEY));
  assert.equal(user.providerType, "api-key");
  assert.equal(typeof user.accessToken, "string");
  const wrong = await app.logIn(Realm.Credentials.apiKey("not-the-key")).then(
    () => null,
    (err) => err,
  );
  assert.equal(wrong?.statusCode, 401, `a wrong key: ${wrong}`);
  await user.logOut();
});

await check(
  "realm-web: refreshes by itself after its access token expired",
  async () => {
    const expired = realmUser.accessToken;
    // Wait until the server refuses the token (lifetime 2 s plus leeway).
    const deadline = Date.now() + 20_000;
    for (;;) {
      const answer = await request("GET", `${clientApi(a)}/auth/profile`, {
        headers: { authorization: `Bearer ${expired}` },
      });
      if (answer.status === 401) break;
      assert.ok(Date.now() < deadline, "the access token was still accepted after 20 s");
      await new Promise((done) => setTimeout(done, 500));
    }
    const before = mark();
    await realmUser.refreshProfile();
    assert.notEqual(realmUser.accessToken, expired, "realm-web kept the expired token");
    assert.equal(realmUser.profile.email, EMAIL);
    const refreshed = since(before).some((e) => e.method === "POST" && e.path === "/api/client/v2.0/auth/session" && e.status === 201);
    assert.ok(refreshed, "realm-web did not refresh its session");
  },
  { timeoutMs: 40_000 },
);

await check("realm-web: logout ends the refresh token and the access token", async () => {
  const { accessToken, refreshToken } = realmUser;
  await realmUser.logOut();
  assert.equal(realmUser.state, "logged-out");
  const refresh = await request("POST", `${clientApi(a)}/auth/session`, {
    headers: { authorization: `Bearer ${refreshToken}` },
  });
  assert.equal(refresh.status, 401, `refresh after logout: ${refresh.status} ${refresh.text}`);
  const data = await request("POST", `${a.base}/action/find`, {
    headers: { authorization: `Bearer ${accessToken}`, "content-type": "application/json" },
    body: JSON.stringify({ dataSource: SOURCE, database: "realm", collection: "notes" }),
  });
  assert.equal(data.status, 401, `Data API after logout: ${data.status} ${data.text}`);
});

await check("realm-web: the device id is kept across logins", async () => {
  const app = new Realm.App({ id: APP, baseUrl: a.origin });
  const before = mark();
  const first = await app.logIn(Realm.Credentials.emailPassword(EMAIL, PASSWORD));
  const firstDevice = first.deviceId;
  await first.logOut();
  const second = await app.logIn(Realm.Credentials.emailPassword(EMAIL, PASSWORD));
  assert.equal(typeof firstDevice, "string");
  assert.equal(second.deviceId, firstDevice);
  const logins = since(before).filter((e) => e.path.endsWith("/login"));
  assert.equal(logins.length, 2);
  const sent = JSON.parse(logins[1].requestBody).options?.device?.deviceId;
  assert.deepEqual(sent, { $oid: firstDevice }, "realm-web sent the stored id as EJSON");
  assert.equal(JSON.parse(logins[1].responseBody).device_id, firstDevice);
  await second.logOut();
});

// --- the docs' curl examples, from a plain HTTP client ------------------------------

const curlHeaders = (extra) => ({ "user-agent": "curl/8.0", accept: "*/*", ...extra });

await check("curl: insertOne with apiKey (application/json)", async () => {
  const answer = await request("POST", `${a.base}/action/insertOne`, {
    headers: curlHeaders({ apiKey: KEY, "content-type": "application/json" }),
    body: JSON.stringify({ dataSource: SOURCE, database: "todo", collection: "tasks", document: { text: "Do the dishes" } }),
  });
  assert.equal(answer.status, 201);
  assert.match(answer.json.insertedId, /^[0-9a-f]{24}$/);
});
await check("curl: find with api-key", async () => {
  const answer = await request("POST", `${a.base}/action/find`, {
    headers: curlHeaders({ "api-key": KEY, "content-type": "application/json" }),
    body: JSON.stringify({ dataSource: SOURCE, database: "todo", collection: "tasks", filter: { text: "Do the dishes" } }),
  });
  assert.equal(answer.status, 200);
  assert.equal(answer.json.documents.length, 1);
  assert.equal(typeof answer.json.documents[0]._id, "string");
});
await check("curl: Accept: application/ejson answers extended JSON", async () => {
  const answer = await request("POST", `${a.base}/action/findOne`, {
    headers: curlHeaders({ apiKey: KEY, "content-type": "application/json", accept: "application/ejson" }),
    body: JSON.stringify({ dataSource: SOURCE, database: "todo", collection: "tasks", filter: {} }),
  });
  assert.equal(answer.status, 200);
  assert.match(answer.headers["content-type"], /application\/ejson/);
  assert.match(answer.json.document._id.$oid, /^[0-9a-f]{24}$/);
});
await check("curl: the beta URL", async () => {
  const answer = await request("POST", `${a.origin}/app/${APP}/endpoint/data/beta/action/findOne`, {
    headers: curlHeaders({ apiKey: KEY, "content-type": "application/json" }),
    body: JSON.stringify({ dataSource: SOURCE, database: "todo", collection: "tasks", filter: {} }),
  });
  assert.equal(answer.status, 200);
  assert.equal(answer.json.document.text, "Do the dishes");
});
await check("curl: -d with curl's default form content type", async () => {
  const answer = await request("POST", `${a.base}/action/insertOne`, {
    headers: curlHeaders({ apiKey: KEY, "content-type": "application/x-www-form-urlencoded" }),
    body: JSON.stringify({ dataSource: SOURCE, database: "todo", collection: "tasks", document: { text: "form" } }),
  });
  assert.equal(answer.status, 201, answer.text);
});
await check("curl: a wrong key is 401 in the error shape", async () => {
  const answer = await request("POST", `${a.base}/action/find`, {
    headers: curlHeaders({ apiKey: "nope", "content-type": "application/json" }),
    body: JSON.stringify({ dataSource: SOURCE, database: "todo", collection: "tasks" }),
  });
  assert.equal(answer.status, 401);
  assert.equal(typeof answer.json.error, "string");
  assert.equal(typeof answer.json.error_code, "string");
});

// --- CORS, from outside the browser -------------------------------------------------

async function preflight(server, requested) {
  return request("OPTIONS", `${server.base}/action/find`, {
    headers: {
      origin: page.origin,
      "access-control-request-method": "POST",
      "access-control-request-headers": requested,
    },
  });
}
await check("CORS: preflights echo x-realm-op-name, never apiKey by default", async () => {
  const answer = await preflight(a, "apikey,content-type,x-realm-op-name");
  assert.equal(answer.status, 204);
  assert.equal(answer.headers["access-control-allow-origin"], page.origin);
  const allowed = answer.headers["access-control-allow-headers"].split(/,\s*/);
  assert.ok(allowed.includes("x-realm-op-name"), allowed.join());
  assert.ok(!allowed.includes("apikey"), allowed.join());
  assert.match(answer.headers.vary, /access-control-request-headers/i);
  assert.match(answer.headers.vary, /origin/i);
  const opened = await preflight(b, "apikey,content-type");
  assert.ok(opened.headers["access-control-allow-headers"].split(/,\s*/).includes("apikey"));
});
await check("config: cors_allow_credential_headers without an origin stops start-up", async () => {
  const toml = `cors_allow_credential_headers = true\n[[data_sources]]\nname = "${SOURCE}"\nuri = "memory"\n`;
  const { code, stderr } = await runToFailure(binary, toml);
  assert.notEqual(code, 0, "the binary started");
  assert.match(stderr, /cors_allow_credential_headers/);
  assert.match(stderr, /cors_allowed_origins/);
});

// --- a real browser on another origin -----------------------------------------------------

const profileDir = mkdtempSync(join(tmpdir(), "tda-clients-chromium-"));
let browser;
let pageResults = [];
let pageLog = [];
const screenshot = join(targetDir, "clients-browser.png");
const browserStart = mark();
await check(
  "browser: Chromium loads the page from another origin and runs its checks",
  async () => {
    browser = await puppeteer.launch({
      executablePath: chromium,
      headless: "shell",
      userDataDir: profileDir,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    });
    const tab = await browser.newPage();
    await tab.setViewport({ width: 1000, height: 700 });
    tab.on("console", (msg) => pageLog.push(`console.${msg.type()}: ${msg.text()}`));
    tab.on("pageerror", (err) => pageLog.push(`page error: ${err.message}`));
    tab.on("requestfailed", (req) => pageLog.push(`request failed: ${req.method()} ${req.url()} ${req.failure()?.errorText}`));
    const query = new URLSearchParams({ a: a.origin, b: b.origin, app: APP, source: SOURCE, key: KEY, email: EMAIL, password: PASSWORD });
    await tab.goto(`${page.origin}/index.html?${query}`, { waitUntil: "load" });
    await tab.waitForFunction("window.__done === true", { timeout: 30_000 });
    pageResults = await tab.evaluate("window.__results");
    mkdirSync(targetDir, { recursive: true });
    await tab.screenshot({ path: screenshot, fullPage: true });
    assert.ok(pageResults.length >= 4, `the page ran ${pageResults.length} checks`);
  },
  { timeoutMs: 60_000 },
);
// The page's own checks ran inside the one above: a failing one shows every
// request of the browser's run.
const browserEnd = mark();
for (const result of pageResults) {
  await check(
    `browser: ${result.name}`,
    async () => {
      if (!result.ok) {
        throw new Error(`${result.error}\n  page log:\n    ${pageLog.join("\n    ") || "(empty)"}`);
      }
    },
    { seen: () => since(browserStart).slice(0, browserEnd - browserStart) },
  );
}
await check("browser: the apiKey request never left the page (refused at the preflight)", async () => {
  const seen = since(browserStart).filter((e) => e.server === "json");
  const preflights = seen.filter(
    (e) => e.method === "OPTIONS" && /apikey/i.test(e.requestHeaders["access-control-request-headers"] ?? ""),
  );
  assert.ok(preflights.length >= 1, "no preflight asked for apiKey");
  for (const e of preflights) {
    assert.ok(!/apikey/i.test(e.responseHeaders["access-control-allow-headers"] ?? ""), "apiKey was allowed");
  }
  assert.ok(!seen.some((e) => e.method === "POST" && e.requestHeaders.apikey), "a POST with apiKey reached the server");
  const opName = seen.some((e) => e.method === "POST" && e.requestHeaders["x-realm-op-name"] && e.status < 300);
  assert.ok(opName, "no request with x-realm-op-name got through");
});
if (browser) await browser.close();
rmSync(profileDir, { recursive: true, force: true });

for (const server of servers) await server.stop();
page.server.close();

// --- shared state: two instances over one state store on the peer ------------------

await sharedStateChecks(binary);

// --- the admin console in the browser (issue 16) ------------------------------------------

await runConsole({ binary, chromium, targetDir });

const { passed, failed } = summary();
if (existsSync(screenshot)) console.log(`screenshot: ${screenshot}`);
console.log(`clients suite: ${((Date.now() - started) / 1000).toFixed(1)} s`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 && passed > 0 ? 0 : 1);
