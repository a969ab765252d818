// Two standalone instances over one state store on the wire-protocol peer
// (issue 13): realm-web logs in, refreshes and logs out on C while its
// tokens call the Data API on D; a key made by the CLI works on both at once
// and is refused on both once deleted; D restarts in between and keeps
// honouring C's sessions. The instances configure no signing key: they
// share the one kept in the state database.
//
// Needs DATA_API_TEST_MONGODB_URI (as .ci/run exports); without it the
// checks fail, unless DATA_API_TEST_NO_PEER=1 says the run has no peer.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import * as Realm from "realm-web";

import { check, startStandalone } from "./harness.mjs";

const APP = "data-shared-state";
const SOURCE = "mongodb-atlas";
const EMAIL = "shared@example.com";
const PASSWORD = "a shared-state password";

function config(peer, stateDb) {
  return `
app_id = "${APP}"

[[data_sources]]
name = "${SOURCE}"
uri = "memory"

[[users]]
email = "${EMAIL}"
password = "${PASSWORD}"

[state]
uri = "${peer}"
database = "${stateDb}"
`;
}

/** Runs `standalone --config <file> <args>`; { ok, stdout, stderr }. */
function cli(binary, configPath, args) {
  const run = spawnSync(binary, ["--config", configPath, ...args], { encoding: "utf8", timeout: 30_000 });
  return { ok: run.status === 0, stdout: run.stdout ?? "", stderr: run.stderr ?? "" };
}

async function call(server, headers) {
  const response = await fetch(`${server.base}/action/find`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify({ dataSource: SOURCE, database: "shared", collection: "notes" }),
  });
  await response.text();
  return response.status;
}

export async function sharedStateChecks(binary) {
  const peer = process.env.DATA_API_TEST_MONGODB_URI;
  if (!peer) {
    if (process.env.DATA_API_TEST_NO_PEER === "1") {
      console.log("SKIPPED shared state (DATA_API_TEST_NO_PEER=1): needs the wire-protocol peer");
      return;
    }
    await check("shared state: the wire-protocol peer is there", () => {
      assert.fail("set DATA_API_TEST_MONGODB_URI (bash .ci/peer.sh start), or DATA_API_TEST_NO_PEER=1 to skip on purpose");
    });
    return;
  }
  const stateDb = `clients_state_${process.pid}_${Date.now()}`;
  const toml = config(peer, stateDb);
  const configPath = join(mkdtempSync(join(tmpdir(), "tda-shared-")), "shared.toml");
  writeFileSync(configPath, toml);
  const servers = [];
  try {
    const c = await startStandalone(binary, "state-c", toml, APP);
    servers.push(c);
    let d = await startStandalone(binary, "state-d", toml, APP);
    servers.push(d);
    const app = new Realm.App({ id: APP, baseUrl: c.origin });
    let user;

    await check("shared state: realm-web logs in on C, its token calls the Data API on D", async () => {
      user = await app.logIn(Realm.Credentials.emailPassword(EMAIL, PASSWORD));
      assert.equal(await call(d, { authorization: `Bearer ${user.accessToken}` }), 200);
    });

    await check("shared state: a key made by the CLI works on C and D without a restart, and dies on both", async () => {
      const made = cli(binary, configPath, ["keys", "create", "from-the-cli"]);
      assert.ok(made.ok, made.stderr);
      const key = made.stdout.trim();
      assert.equal(key.length, 64);
      assert.equal(await call(c, { apiKey: key }), 200);
      assert.equal(await call(d, { apiKey: key }), 200);
      const deleted = cli(binary, configPath, ["keys", "delete", "from-the-cli"]);
      assert.ok(deleted.ok, deleted.stderr);
      await new Promise((done) => setTimeout(done, 1_200));
      assert.equal(await call(c, { apiKey: key }), 401);
      assert.equal(await call(d, { apiKey: key }), 401);
    });

    await check("shared state: D restarts and still honours C's session; realm-web refreshes on C", async () => {
      await d.stop();
      servers.splice(servers.indexOf(d), 1);
      d = await startStandalone(binary, "state-d2", toml, APP);
      servers.push(d);
      assert.equal(await call(d, { authorization: `Bearer ${user.accessToken}` }), 200, "the token from before the restart");
      const before = user.accessToken;
      await user.refreshAccessToken();
      assert.notEqual(user.accessToken, before);
      assert.equal(await call(d, { authorization: `Bearer ${user.accessToken}` }), 200, "the refreshed token");
    });

    await check("shared state: realm-web logs out on C; D refuses its tokens", async () => {
      const { accessToken, refreshToken } = user;
      await user.logOut();
      assert.equal(await call(d, { authorization: `Bearer ${accessToken}` }), 401);
      const refresh = await fetch(`${d.origin}/api/client/v2.0/auth/session`, {
        method: "POST",
        headers: { authorization: `Bearer ${refreshToken}` },
      });
      await refresh.text();
      assert.equal(refresh.status, 401);
    });

    await check("shared state: the CLI finds D's refused calls in the shared request log", async () => {
      // Entries are written off the request path: give the writers a moment.
      let logs;
      let entries = [];
      for (let attempt = 0; attempt < 30 && entries.length < 4; attempt++) {
        if (attempt > 0) await new Promise((done) => setTimeout(done, 100));
        logs = cli(binary, configPath, ["logs", "--status", "401", "--since", "1h"]);
        assert.ok(logs.ok, logs.stderr);
        entries = logs.stdout.trim().split("\n").filter(Boolean).map((line) => JSON.parse(line));
      }
      // Two refused keys, a refused access token and a refused refresh token.
      assert.equal(entries.length, 4, logs.stdout);
      assert.ok(entries.every((entry) => entry.status === 401));
    });
  } finally {
    for (const server of servers) await server.stop();
  }
}
