import { randomBytes } from 'node:crypto';
import type { Dispatcher } from 'undici';
import { checkNameServerProof, connectionAddress, type ClusterKeys } from '../protocol/auth.js';
import { SdfsError } from '../protocol/errors.js';
import { callJson } from '../protocol/http.js';
import { API_PREFIX, type ProofResponse } from '../protocol/messages.js';

/** How long a name server heard on the LAN has to answer its proof. */
const PROOF_TIMEOUT_MS = 10_000;

/**
 * Asks the name server at `url` (heard in a LAN announcement) to prove that it holds the cluster
 * secret: the MAC of a fresh random nonce and of the address asked. Resolves if it does; throws EAUTH
 * if it answers with anything else, or the error of the call (EUNAVAILABLE...) if it does not answer.
 * An announcement captured and sent again from another address passes its own signature check, but
 * its sender cannot answer this, not even by passing the question on to the real name server.
 */
export async function confirmNameServer(url: string, keys: ClusterKeys, dispatcher: Dispatcher): Promise<void> {
  const nonce = randomBytes(32).toString('base64url');
  const { hostname, port, protocol } = new URL(url);
  const address = connectionAddress(hostname, port || (protocol === 'https:' ? 443 : 80));
  const answer = await callJson<ProofResponse>(url, `${API_PREFIX}/cluster/proof`, { query: { nonce }, dispatcher, timeoutMs: PROOF_TIMEOUT_MS });
  if (!checkNameServerProof(keys, nonce, address, (answer as { proof?: unknown } | undefined)?.proof)) {
    throw new SdfsError('EAUTH', `${url} gave no proof that it holds this cluster's secret`);
  }
}
