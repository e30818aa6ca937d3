/**
 * Why a node could not be reached, in words that say what to do: TLS
 * certificate problems, a plain `redis://` URL on a port that speaks TLS, a
 * TLS node that wants a client certificate. ioredis reports most of these as
 * "Connection is closed."; the cause is the last 'error' event it emitted.
 */
import { connect as tlsConnect } from 'node:tls';

/** What went wrong and how to fix it. */
export interface ConnectProblem {
  readonly detail: string;
  readonly fix: string;
}

const UNTRUSTED = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_SIGNATURE_FAILURE',
]);

const TRUST_FIX =
  'trust the CA that signed the node certificate: NODE_EXTRA_CA_CERTS=/path/to/ca.pem for the CLI and rediss:// URLs, or tls: { ca } on an ioredis instance you pass to Redlock';

/**
 * Explains `err`, the error of connecting to `url` (prefer the client's last
 * 'error' event over its generic rejection). For a plain `redis://` URL whose
 * connection was closed, it checks within `timeoutMs` whether the port speaks TLS.
 */
export async function explainConnectError(
  url: string,
  err: unknown,
  timeoutMs: number,
): Promise<ConnectProblem> {
  const code = (err as { code?: unknown } | undefined)?.code;
  const text = err instanceof Error ? err.message : String(err);
  if (typeof code === 'string' && UNTRUSTED.has(code)) {
    return {
      detail: `TLS: the node's certificate is not signed by a CA this client trusts (${code}: ${text})`,
      fix: TRUST_FIX,
    };
  }
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    return {
      detail: `TLS: the node's certificate does not name the host in the URL (${text})`,
      fix: 'use a host name the certificate lists in subjectAltName, or reissue the certificate with this host name or IP',
    };
  }
  if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID') {
    return {
      detail: `TLS: the node's certificate is not valid now (${code})`,
      fix: 'renew the node certificate (tls-cert-file) and check the clocks of client and node',
    };
  }
  const parsed = safeUrl(url);
  // A TLS port answers plain text with an alert or by closing, seen as a reset, a broken
  // pipe or a protocol error depending on timing: whatever it was, ask the port itself.
  const noServer = code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'EAI_AGAIN';
  if (!noServer && parsed?.protocol === 'redis:' && (await speaksTls(parsed, timeoutMs))) {
    return {
      detail: `the node closed the connection: this port speaks TLS, and the URL asks for plain TCP (${text})`,
      fix: `use ${url.replace(/^redis:/i, 'rediss:').replace(/\/\/[^@/]*@/, '//***@')}`,
    };
  }
  const closed =
    code === 'ECONNRESET' ||
    code === 'EPIPE' ||
    code === 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED' ||
    /connection is closed|socket hang up|alert certificate required|alert handshake failure/i.test(
      text,
    );
  if (closed && parsed?.protocol === 'rediss:') {
    return {
      detail: `the node closed the TLS connection (${text}); a node with tls-auth-clients yes does this to clients without a certificate`,
      fix: 'if the node requires client certificates, pass Redlock ioredis instances with tls: { ca, cert, key } (a rediss:// URL cannot carry a client certificate), or set tls-auth-clients optional on the node',
    };
  }
  return {
    detail: `cannot talk to the node: ${text}`,
    fix: 'check the URL, that redis-server runs and listens there, credentials, TLS (rediss://) and firewalls',
  };
}

/** Whether a TLS handshake (certificate unchecked) completes on the URL's host and port. */
function speaksTls(url: URL, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tlsConnect({
      host: url.hostname.replace(/^\[|\]$/g, ''),
      port: url.port === '' ? 6379 : Number(url.port),
      rejectUnauthorized: false,
      timeout: timeoutMs,
    });
    const done = (result: boolean) => {
      socket.destroy();
      resolve(result);
    };
    socket.once('secureConnect', () => done(true));
    socket.once('error', () => done(false));
    socket.once('timeout', () => done(false));
  });
}

function safeUrl(url: string): URL | undefined {
  try {
    return new URL(url);
  } catch {
    return undefined;
  }
}
