// SPDX-License-Identifier: BSD-3-Clause
// server_node.mjs - node's http2 as a server under test for the HTTP/2
// client matrix (servers.py's "node" profile): the contract at the top of
// servers.py, h2 over TLS and h2c with prior knowledge. The 401 and the 413
// (by Content-Length, or once the body passes the limit) are answered
// without reading the rest, as an application would.
//
//   node server_node.mjs PORT TLS_PORT LIM_PORT LIM_TLS_PORT CERT KEY ROOT UP TOKEN LIMIT
import fs from 'node:fs';
import http2 from 'node:http2';
import path from 'node:path';

const [port, tlsPort, limPort, limTlsPort, cert, key, root, up, token, limitArg] =
  process.argv.slice(2);

function handler(limit) {
  return (req, res) => {
    const p = req.url.split('?')[0];
    if (!p.startsWith('/up/')) {
      fs.readFile(path.join(root, path.normalize(p)), (err, data) => {
        if (err) { res.writeHead(404); res.end(); return; }
        res.writeHead(200, { 'content-length': data.length });
        res.end(data);
      });
      return;
    }
    if (req.headers.authorization !== `Bearer ${token}`) {
      res.writeHead(401, { 'content-type': 'text/plain' });
      res.end('no token\n');
      return;
    }
    if (limit && Number(req.headers['content-length'] || 0) > limit) {
      res.writeHead(413, { 'content-type': 'text/plain' });
      res.end('too large\n');
      return;
    }
    const dir = path.join(up, 'up');
    fs.mkdirSync(dir, { recursive: true });
    const tmp = path.join(dir, `.part-${process.pid}-${Math.random().toString(36).slice(2)}`);
    const out = fs.createWriteStream(tmp);
    let n = 0, refused = false;
    req.on('data', (chunk) => {
      n += chunk.length;
      if (limit && n > limit && !refused) {
        refused = true;
        req.unpipe(out);
        out.destroy();
        fs.rm(tmp, () => {});
        res.writeHead(413, { 'content-type': 'text/plain' });
        res.end('too large\n');
      }
    });
    req.pipe(out);
    out.on('finish', () => {
      if (refused) return;
      fs.rename(tmp, path.join(dir, path.basename(p)), (err) => {
        res.writeHead(err ? 500 : 201);
        res.end();
      });
    });
  };
}

const tls = { cert: fs.readFileSync(cert), key: fs.readFileSync(key) };
for (const [plain, secure, limit] of [[port, tlsPort, 0], [limPort, limTlsPort, Number(limitArg)]]) {
  http2.createServer(handler(limit)).listen(Number(plain), '127.0.0.1');
  http2.createSecureServer(tls, handler(limit)).listen(Number(secure), '127.0.0.1');
}
