// SPDX-License-Identifier: BSD-3-Clause
// graced's security review (issue 17) in a real browser: Debian's chromium,
// headless, driven by puppeteer-core.
//  - An uploaded HTML page (and an SVG) whose script tries to DELETE another
//    file with the visitor's login (the page's, --users-file) must not run
//    as the site: the file is still there afterwards. The old code served it
//    inline from the same origin, and the page deleted the file.
//  - The listing's upload form still works under graced's own strict CSP
//    (its script by nonce), logged in.
//  - GET //evil.com (a folder named evil.com) must not send the browser to
//    another site: the old Location was //evil.com/. Every request the page
//    makes to another host is recorded and aborted, so the test never leaves
//    this machine.
// Bounded in time; graced and chromium are killed by PID whatever happens.
// Usage: node security.mjs GRACED_BINARY   (CHROMIUM overrides /usr/bin/chromium)
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import puppeteer from 'puppeteer-core';

const GRACED = process.argv[2];
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const LIMIT_MS = Number(process.env.GRACED_BROWSER_LIMIT_MS || 90000);
let passed = 0, failed = 0;
const procs = [];

function check(name, cond, detail) {
    if (cond) passed++; else failed++;
    console.log((cond ? 'ok   ' : 'FAIL ') + name + (cond ? '' : ': ' + JSON.stringify(detail)));
}

function killAll() {
    for (const p of procs)
        if (p.exitCode === null && p.signalCode === null) {
            try { process.kill(p.pid, 'SIGKILL'); } catch (e) { /* gone */ }
        }
}

const deadline = setTimeout(() => {
    console.log('FAIL the browser test ran past ' + LIMIT_MS / 1000 + ' s');
    killAll();
    console.log(`${passed} passed, ${failed + 1} failed`);
    process.exit(1);
}, LIMIT_MS);

function startGraced(args) {
    return new Promise((resolve, reject) => {
        const p = spawn(GRACED, ['--listen', '127.0.0.1:0', ...args],
                        { stdio: ['ignore', 'pipe', 'inherit'] });
        procs.push(p);
        let out = '';
        p.stdout.on('data', (d) => {
            out += d;
            const m = out.match(/:(\d+)\/\n/);
            if (m) resolve({ proc: p, port: Number(m[1]) });
        });
        p.on('exit', (code) => reject(new Error('graced exited ' + code)));
    });
}

async function stopGraced(g) {
    if (g.proc.exitCode !== null) return g.proc.exitCode;
    const done = new Promise((r) => g.proc.once('exit', (code) => r(code)));
    process.kill(g.proc.pid, 'SIGTERM');
    return done;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// the attack: with the visitor's credentials, delete another file
const attack = (title) => `<!doctype html><html><head><title>${title}</title></head><body>
<p>a harmless-looking page</p>
<script>
document.title = 'ran';
fetch('/victim.txt', { method: 'DELETE', credentials: 'include' })
  .then((r) => { document.title = 'deleted ' + r.status; })
  .catch((e) => { document.title = 'failed ' + e; });
</script></body></html>`;
const attackSvg = `<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">
<script>fetch('/victim2.txt', { method: 'DELETE', credentials: 'include' })</script>
<rect width="10" height="10"/></svg>`;

async function main() {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'graced-security.'));
    const up = path.join(dir, 'up');
    fs.mkdirSync(up);
    fs.mkdirSync(path.join(up, 'evil.com'));
    fs.writeFileSync(path.join(up, 'victim.txt'), 'keep me\n');
    fs.writeFileSync(path.join(up, 'victim2.txt'), 'keep me too\n');
    fs.writeFileSync(path.join(up, 'evil.html'), attack('uploaded'));
    fs.writeFileSync(path.join(up, 'evil.svg'), attackSvg);
    const small = path.join(dir, 'note.txt');
    fs.writeFileSync(small, 'uploaded from the form\n');
    // sha512-crypt: fast to check, what openssl passwd -6 makes
    const hash = execFileSync('openssl', ['passwd', '-6', 'alice pw']).toString().trim();
    fs.writeFileSync(path.join(dir, 'users'), `alice:${hash}:rw\n`);

    const g = await startGraced(['--root', up, '--upload-dir', up, '--list-dirs',
                                 '--users-file', path.join(dir, 'users')]);
    const base = `http://127.0.0.1:${g.port}`;
    const browser = await puppeteer.launch({
        executablePath: CHROMIUM,
        headless: true,
        // root in a container: no user namespaces for chromium's sandbox; no
        // name other than ours resolves
        args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-proxy-server',
               '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1'],
        timeout: 30000,
    });
    procs.push(browser.process());
    try {
        const page = await browser.newPage();
        page.setDefaultTimeout(30000);
        const offsite = [];
        await page.setRequestInterception(true);
        page.on('request', (r) => {
            const u = new URL(r.url());
            if (u.host !== `127.0.0.1:${g.port}` && u.protocol.startsWith('http')) {
                offsite.push(r.url());
                r.abort();
            } else {
                r.continue();
            }
        });
        const deletes = [];
        page.on('request', (r) => { if (r.method() === 'DELETE') deletes.push(r.url()); });

        // the visitor logs in on the page (a session cookie: a browser is
        // never given a Basic challenge, whose password it would keep)
        await page.goto(base + '/?login');
        await page.type('#user', 'alice');
        await page.type('#password', 'alice pw');
        await Promise.all([page.waitForNavigation(), page.click('form.login button[type=submit]')]);
        // logged in: the upload form works, under graced's CSP
        let resp = await page.goto(base + '/');
        check('the listing opens (200) with its upload form',
              resp.status() === 200 && (await page.$('#upload input[type=file]')) !== null,
              resp.status());
        check('the listing carries its own CSP (frame-ancestors none, script by nonce)',
              /frame-ancestors 'none'/.test(resp.headers()['content-security-policy'] || '') &&
              /script-src 'nonce-/.test(resp.headers()['content-security-policy'] || ''),
              resp.headers());
        const input = await page.$('#upload input[type=file]');
        await input.uploadFile(small);
        await page.click('#upload button[type=submit]');
        await page.waitForSelector('#answer[data-status]');
        const a = await page.$eval('#answer', (el) => ({ status: el.dataset.status, text: el.textContent }));
        console.log('     the page says: ' + a.text.trim().slice(0, 100));
        check('logged in, the form upload works under the CSP (201)',
              a.status === '201' && fs.existsSync(path.join(up, 'note.txt')), a);

        // the uploaded page, visited by the logged-in visitor
        resp = await page.goto(base + '/evil.html');
        await sleep(1500); // time for a script to run and its fetch to finish
        const title = await page.title();
        check('the uploaded page is served with Content-Security-Policy: sandbox',
              /(^|;)\s*sandbox\s*(;|$)/.test(resp.headers()['content-security-policy'] || ''),
              resp.headers());
        check('its script did not run (the title is its own)', title === 'uploaded', title);
        check('no DELETE left the page', deletes.length === 0, deletes);
        check('the other file is still there', fs.existsSync(path.join(up, 'victim.txt')),
              fs.readdirSync(up));
        resp = await page.goto(base + '/evil.svg');
        await sleep(1000);
        check('an uploaded SVG with a script: sandboxed, nothing deleted',
              /sandbox/.test(resp.headers()['content-security-policy'] || '') &&
              deletes.length === 0 && fs.existsSync(path.join(up, 'victim2.txt')),
              { csp: resp.headers()['content-security-policy'], deletes });

        // the open redirect: a folder named evil.com
        for (const target of ['//evil.com', '/\\evil.com', '///evil.com']) {
            offsite.length = 0;
            let err = null;
            try {
                resp = await page.goto(base + target);
            } catch (e) {
                err = String(e);
            }
            const where = page.url();
            check(`GET ${target}: the browser stays on our origin (${where})`,
                  offsite.length === 0 && where.startsWith(base + '/') && !err,
                  { offsite, where, err });
        }
        check('and lands in the folder evil.com', page.url() === base + '/evil.com/', page.url());
    } finally {
        await browser.close().catch(() => {});
        check('graced: SIGTERM exits 0', (await stopGraced(g)) === 0);
        killAll();
        fs.rmSync(dir, { recursive: true, force: true });
    }
}

main().catch((e) => {
    check('the browser test ran', false, String(e && e.stack || e));
}).finally(() => {
    killAll();
    clearTimeout(deadline);
    console.log(`${passed} passed, ${failed} failed`);
    process.exit(failed ? 1 : 0);
});
