// The one bridge from the pytest contract tests to Metriport's npm SDK (tests/contract/README.md).
// Reads one JSON command on stdin and prints one JSON answer on stdout:
//   {"method": "getFacility", "args": [...], "baseAddress": "http://...", "apiKey": "..."}
//     -> {"ok": true, "result": <what the SDK method returned>} or {"ok": false, "error": {...}}
//   {"method": "webhook", "key": "...", "body": "<raw body>", "signature": "<x-metriport-signature>"}
//     -> {"ok": true, "result": {"verified": bool, "parsed": <parseWebhookResponse(body, true)>}}
// `undefined` fields vanish from the printed JSON, so a `null` seen by pytest is a null the SDK returned.
import { MetriportMedicalApi } from "@metriport/api-sdk";

function describe(error) {
  const described = { name: error?.name, message: String(error?.message ?? error) };
  if (Array.isArray(error?.issues)) described.issues = error.issues; // zod
  if (error?.response) {
    described.status = error.response.status;
    described.data = error.response.data;
  }
  return described;
}

async function run(command) {
  if (command.method === "webhook") {
    const verified = MetriportMedicalApi.verifyWebhookSignature(command.key, command.body, command.signature);
    const parsed = MetriportMedicalApi.parseWebhookResponse(JSON.parse(command.body), true);
    return { verified, parsed };
  }
  const api = new MetriportMedicalApi(command.apiKey, { baseAddress: command.baseAddress });
  if (typeof api[command.method] !== "function") throw new Error(`no SDK method ${command.method}`);
  const result = await api[command.method](...(command.args ?? []));
  return result === undefined ? { undefined: true } : result;
}

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
try {
  const result = await run(JSON.parse(Buffer.concat(chunks).toString("utf8")));
  process.stdout.write(JSON.stringify({ ok: true, result }));
} catch (error) {
  process.stdout.write(JSON.stringify({ ok: false, error: describe(error) }));
}
