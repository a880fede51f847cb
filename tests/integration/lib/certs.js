// Test certificates, made with openssl when a test starts (never committed): a CA for
// servers, a server certificate for localhost / 127.0.0.1 / ::1, a second one for reload
// tests, a CA for clients with a client certificate (alice), and a client certificate from
// a CA the server does not trust (mallory).
//
//   const { makeCerts } = require('./lib/certs');
//   const certs = makeCerts();   // certs.ca, certs.serverCert, certs.serverKey, ... (paths)
//   certs.read('ca')             // the PEM text
//   certs.remove()
'use strict';
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

function openssl(args, cwd) {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

// A P-256 key and a certificate for subject, signed by the CA named by `by` (self-signed
// when by is null), with the extensions given as openssl config lines.
function issue(dir, name, subject, by, ext) {
  openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', `${name}.key`], dir);
  const extFile = `${name}.ext`;
  fs.writeFileSync(path.join(dir, extFile), ext.join('\n') + '\n');
  if (!by) {
    openssl(['req', '-x509', '-new', '-key', `${name}.key`, '-subj', subject, '-days', '2',
             '-out', `${name}.pem`, '-extensions', 'v3', '-config', extFile], dir);
    return;
  }
  openssl(['req', '-new', '-key', `${name}.key`, '-subj', subject, '-out', `${name}.csr`], dir);
  openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', `${by}.pem`, '-CAkey', `${by}.key`,
           '-CAcreateserial', '-days', '2', '-out', `${name}.pem`, '-extfile', extFile], dir);
}

const CA_EXT = ['[req]', 'distinguished_name = dn', '[dn]', '[v3]',
                'basicConstraints = critical, CA:TRUE', 'keyUsage = critical, keyCertSign, cRLSign',
                'subjectKeyIdentifier = hash'];
const SERVER_EXT = ['basicConstraints = CA:FALSE', 'keyUsage = digitalSignature',
                    'extendedKeyUsage = serverAuth', 'subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1'];
const CLIENT_EXT = (email) => ['basicConstraints = CA:FALSE', 'keyUsage = digitalSignature',
                               'extendedKeyUsage = clientAuth', `subjectAltName = email:${email}`];

function makeCerts() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rt-certs-'));
  issue(dir, 'ca', '/CN=rtserver test CA', null, CA_EXT);
  issue(dir, 'server', '/CN=localhost/O=rtserver test', 'ca', SERVER_EXT);
  issue(dir, 'server2', '/CN=localhost/O=rtserver renewed', 'ca', SERVER_EXT);
  issue(dir, 'client_ca', '/CN=rtserver test client CA', null, CA_EXT);
  issue(dir, 'alice', '/CN=alice/O=rtserver test', 'client_ca', CLIENT_EXT('alice@example.test'));
  issue(dir, 'rogue_ca', '/CN=somebody else', null, CA_EXT);
  issue(dir, 'mallory', '/CN=mallory', 'rogue_ca', CLIENT_EXT('mallory@example.test'));
  const p = (f) => path.join(dir, f);
  return {
    dir,
    ca: p('ca.pem'),
    serverCert: p('server.pem'), serverKey: p('server.key'),
    server2Cert: p('server2.pem'), server2Key: p('server2.key'),
    clientCa: p('client_ca.pem'),
    aliceCert: p('alice.pem'), aliceKey: p('alice.key'),
    malloryCert: p('mallory.pem'), malloryKey: p('mallory.key'),
    read(name) { return fs.readFileSync(p(name.endsWith('.pem') || name.endsWith('.key') ? name : `${name}.pem`)); },
    serverArgs(extra = []) { return ['--tls-cert', p('server.pem'), '--tls-key', p('server.key'), ...extra]; },
    remove() { fs.rmSync(dir, { recursive: true, force: true }); },
  };
}

module.exports = { makeCerts };
