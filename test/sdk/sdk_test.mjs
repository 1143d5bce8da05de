// Microsoft's Azure SDK for JavaScript (@azure/keyvault-keys, @azure/identity)
// against the local Key Vault / Entra ID emulator, with no client option
// changed: the vault is https://<name>.vault.azure.net, sign-in goes to the
// SDK's default authority (login.microsoftonline.com), TLS is verified
// against the emulator's CA (NODE_EXTRA_CA_CERTS). run.sh starts the emulator
// in a private network namespace where those names are the emulator.
//
// Environment (set by run.sh): CMK_SDK_VAULT_URL, CMK_SDK_TENANT,
// CMK_SDK_CLIENT_ID, CMK_SDK_SECRET, CMK_SDK_OTHER_AUTHORITY (a sign-in host
// MSAL does not know, for the instance-discovery check).
import assert from "node:assert/strict";
import { constants, publicEncrypt, randomBytes, createPublicKey } from "node:crypto";
import { ClientSecretCredential, DefaultAzureCredential } from "@azure/identity";
import { CryptographyClient, KeyClient } from "@azure/keyvault-keys";

const vaultUrl = process.env.CMK_SDK_VAULT_URL;
const tenant = process.env.CMK_SDK_TENANT;
const clientId = process.env.CMK_SDK_CLIENT_ID;
const secret = process.env.CMK_SDK_SECRET;
for (const [k, v] of Object.entries({ vaultUrl, tenant, clientId, secret }))
  if (!v) throw new Error(`${k} is not set: run test/sdk/run.sh`);

let passed = 0, failed = 0;
async function check(name, fn) {
  try {
    await fn();
    passed++;
    console.log(`ok - ${name}`);
  } catch (e) {
    failed++;
    console.log(`not ok - ${name}\n  ${String(e && e.stack || e).split("\n").join("\n  ")}`);
  }
}
const rejectsWith = (promise, test) => assert.rejects(promise, (e) => {
  test(e);
  return true;
});

const credential = new ClientSecretCredential(tenant, clientId, secret);
const client = new KeyClient(vaultUrl, credential);
const name = `sdk-${randomBytes(4).toString("hex")}`;
let v1, v2, wrappedByV1;

await check("createRsaKey: a new key in the vault, its id under the vault URL", async () => {
  v1 = await client.createRsaKey(name, { keySize: 2048, keyOps: ["wrapKey", "unwrapKey"] });
  assert.match(v1.id, new RegExp(`^${vaultUrl}/keys/${name}/[0-9a-f]{32}$`));
  assert.equal(v1.keyType, "RSA");
  assert.equal(v1.properties.recoveryLevel, "Recoverable");
  assert.equal(v1.properties.recoverableDays, 90);
});

await check("getKey by version returns that version's public key", async () => {
  const got = await client.getKey(name, { version: v1.properties.version });
  assert.equal(got.id, v1.id);
  assert.deepEqual(Buffer.from(got.key.n), Buffer.from(v1.key.n));
  assert.deepEqual(got.keyOperations, ["wrapKey", "unwrapKey"]);
});

for (const alg of ["RSA-OAEP", "RSA-OAEP-256"]) {
  await check(`CryptographyClient wrapKey/unwrapKey ${alg}`, async () => {
    const crypto = new CryptographyClient(v1.id, credential);
    const dek = randomBytes(32);
    const w = await crypto.wrapKey(alg, dek);
    assert.equal(w.keyID, v1.id);
    assert.equal(w.result.length, 256);
    const u = await crypto.unwrapKey(alg, w.result);
    assert.deepEqual(Buffer.from(u.result), dek);
    if (alg === "RSA-OAEP-256") wrappedByV1 = w.result;
  });
}

await check("RSA-OAEP-256 is real: a DEK wrapped here with the public key unwraps in the vault", async () => {
  const pub = createPublicKey({
    key: { kty: "RSA", n: Buffer.from(v1.key.n).toString("base64url"), e: Buffer.from(v1.key.e).toString("base64url") },
    format: "jwk",
  });
  const dek = randomBytes(32);
  const w = publicEncrypt({ key: pub, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256" }, dek);
  const u = await new CryptographyClient(v1, credential).unwrapKey("RSA-OAEP-256", w);
  assert.deepEqual(Buffer.from(u.result), dek);
});

await check("rotateKey makes a new current version; the old one still unwraps", async () => {
  v2 = await client.rotateKey(name);
  assert.notEqual(v2.properties.version, v1.properties.version);
  assert.equal((await client.getKey(name)).id, v2.id);
  const u = await new CryptographyClient(v1.id, credential).unwrapKey("RSA-OAEP-256", wrappedByV1);
  assert.equal(u.result.length, 32);
});

await check("listPropertiesOfKeyVersions lists both versions", async () => {
  const versions = [];
  for await (const p of client.listPropertiesOfKeyVersions(name)) versions.push(p.version);
  assert.deepEqual(versions.sort(), [v1.properties.version, v2.properties.version].sort());
});

await check("a disabled version answers 403 (get and unwrap)", async () => {
  const p = await client.updateKeyProperties(name, v1.properties.version, { enabled: false });
  assert.equal(p.properties.enabled, false);
  await rejectsWith(client.getKey(name, { version: v1.properties.version }), (e) => {
    assert.equal(e.statusCode, 403, e.message);
    assert.match(e.message, /disabled/);
  });
  // The key's id (not the bundle): the client asks the vault, which refuses.
  await rejectsWith(new CryptographyClient(v1.id, credential).unwrapKey("RSA-OAEP-256", wrappedByV1), (e) =>
    assert.equal(e.statusCode, 403, e.message));
  await client.updateKeyProperties(name, v1.properties.version, { enabled: true });
});

await check("a key that does not exist answers 404 KeyNotFound", async () => {
  await rejectsWith(client.getKey(`${name}-missing`), (e) => {
    assert.equal(e.statusCode, 404, e.message);
    assert.equal(e.code, "KeyNotFound");
  });
});

await check("a wrong client secret is an authentication error (invalid_client, AADSTS7000215)", async () => {
  const bad = new KeyClient(vaultUrl, new ClientSecretCredential(tenant, clientId, "not-the-secret"));
  await rejectsWith(bad.getKey(name), (e) => {
    // MSAL reports the token endpoint's refusal as a ServerError, which
    // @azure/identity hands on as AuthenticationRequiredError.
    assert.ok(["AuthenticationError", "AuthenticationRequiredError"].includes(e.name), `${e.name}: ${e.message}`);
    assert.match(e.message, /invalid_client/);
    assert.match(e.message, /AADSTS7000215/);
  });
});

await check("DefaultAzureCredential from AZURE_TENANT_ID / AZURE_CLIENT_ID / AZURE_CLIENT_SECRET", async () => {
  process.env.AZURE_TENANT_ID = tenant;
  process.env.AZURE_CLIENT_ID = clientId;
  process.env.AZURE_CLIENT_SECRET = secret;
  const k = await new KeyClient(vaultUrl, new DefaultAzureCredential()).getKey(name);
  assert.equal(k.id, v2.id);
});

if (process.env.CMK_SDK_OTHER_AUTHORITY) {
  await check("an authority MSAL does not know (AZURE_AUTHORITY_HOST): instance discovery, then sign-in", async () => {
    process.env.AZURE_AUTHORITY_HOST = process.env.CMK_SDK_OTHER_AUTHORITY;
    const k = await new KeyClient(vaultUrl, new ClientSecretCredential(tenant, clientId, secret)).getKey(name);
    assert.equal(k.id, v2.id);
    delete process.env.AZURE_AUTHORITY_HOST;
  });
}

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
