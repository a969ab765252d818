// Runs in Chromium, on an origin other than the API's. Each step records
// { name, ok, detail | error } in window.__results; run.mjs reads them.
import { MongoClient } from "@taskless/mongo-data-api";

const q = new URLSearchParams(location.search);
const cfg = Object.fromEntries(["a", "b", "app", "source", "key", "email", "password"].map((k) => [k, q.get(k)]));
const dataApi = (origin) => `${origin}/app/${cfg.app}/endpoint/data/v1`;
const results = [];
document.getElementById("where").textContent = `page ${location.origin}, API ${cfg.a} and ${cfg.b}`;

async function step(name, fn) {
  const item = document.createElement("li");
  try {
    const detail = await fn();
    results.push({ name, ok: true, detail: String(detail ?? "") });
    item.className = "ok";
    item.textContent = name;
    if (detail) item.append(Object.assign(document.createElement("pre"), { textContent: String(detail) }));
  } catch (err) {
    const error = (err && err.stack) || String(err);
    results.push({ name, ok: false, error });
    item.className = "fail";
    item.textContent = name;
    item.append(Object.assign(document.createElement("pre"), { textContent: error }));
  }
  document.getElementById("results").append(item);
}

async function post(origin, action, headers, body) {
  const response = await fetch(`${dataApi(origin)}/action/${action}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify({ dataSource: cfg.source, database: "browser", collection: "notes", ...body }),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${action}: ${response.status} ${text}`);
  return JSON.parse(text);
}

let user;
await step("realm-web (browser build) logs in and calls the Data API with its bearer token", async () => {
  const app = new Realm.App({ id: cfg.app, baseUrl: cfg.a });
  user = await app.logIn(Realm.Credentials.emailPassword(cfg.email, cfg.password));
  const auth = { authorization: `Bearer ${user.accessToken}` };
  const { insertedId } = await post(cfg.a, "insertOne", auth, { document: { text: "from the page", by: user.id } });
  const { document } = await post(cfg.a, "findOne", auth, { filter: { text: "from the page" } });
  if (document?._id !== insertedId) throw new Error(`found ${JSON.stringify(document)}`);
  return `user ${user.id}, inserted ${insertedId}`;
});

await step("@taskless/mongo-data-api runs in the page with a bearer token (x-realm-op-name)", async () => {
  if (!user) throw new Error("no realm-web user");
  await user.refreshAccessToken();
  const notes = new MongoClient({
    endpoint: dataApi(cfg.a),
    dataSource: cfg.source,
    auth: { bearerToken: user.accessToken },
  })
    .db("browser")
    .collection("notes");
  const inserted = await notes.insertOne("page insert", { text: "via taskless", n: 2 });
  if (inserted.error) throw new Error(`insertOne: ${inserted.error.code} ${inserted.error.message}`);
  const found = await notes.findOne("page find", { n: 2 });
  if (found.error) throw new Error(`findOne: ${found.error.code} ${found.error.message}`);
  if (found.data?.text !== "via taskless") throw new Error(`found ${JSON.stringify(found.data)}`);
  const all = await notes.find({}, { sort: { text: 1 } });
  if (all.error || all.data.length !== 2) throw new Error(`find: ${JSON.stringify(all)}`);
  await user.logOut();
  return `inserted ${inserted.data.insertedId}`;
});

await step("an apiKey header is refused cross-origin by default", async () => {
  let response;
  try {
    response = await fetch(`${dataApi(cfg.a)}/action/find`, {
      method: "POST",
      headers: { "content-type": "application/json", apiKey: cfg.key },
      body: JSON.stringify({ dataSource: cfg.source, database: "browser", collection: "notes" }),
    });
  } catch (err) {
    if (err instanceof TypeError) return `the browser refused: ${err.message}`;
    throw err;
  }
  throw new Error(`the request went through: ${response.status}`);
});

await step("an apiKey header is allowed where cors_allow_credential_headers = true", async () => {
  const { insertedId } = await post(cfg.b, "insertOne", { apiKey: cfg.key }, { document: { text: "with a key" } });
  return `inserted ${JSON.stringify(insertedId)}`;
});

window.__results = results;
window.__done = true;
