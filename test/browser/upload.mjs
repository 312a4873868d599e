// SPDX-License-Identifier: BSD-3-Clause
// graced in a real browser: Debian's chromium, headless, driven by
// puppeteer-core. Opens a listing, uploads a file through the page's form
// and checks it on disk byte for byte, then uploads a file over
// --max-body-size and checks that the page shows the server's 413 (not a
// failed connection), and the same with a wrong token for 401.
// Bounded in time; graced and chromium are killed by PID whatever happens.
// Usage: node upload.mjs GRACED_BINARY   (CHROMIUM overrides /usr/bin/chromium)
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
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

// the whole run is bounded, also if chromium hangs
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

// choose a file in the form, submit, wait for the page to show the answer
async function upload(page, file, token) {
    const input = await page.$('#upload input[type=file]');
    await input.uploadFile(file);
    if (token !== undefined)
        await page.$eval('#upload input[name=token]', (el, t) => { el.value = t; }, token);
    await page.$eval('#answer', (el) => { delete el.dataset.status; el.textContent = ''; });
    await page.click('#upload button[type=submit]');
    await page.waitForSelector('#answer[data-status]', { timeout: LIMIT_MS - 10000 });
    const a = await page.$eval('#answer', (el) => ({ status: el.dataset.status,
                                                     text: el.textContent, cls: el.className }));
    console.log('     the page says: ' + a.text.trim().slice(0, 120));
    return a;
}

async function main() {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'graced-browser.'));
    const up = path.join(dir, 'up');
    fs.mkdirSync(up);
    fs.writeFileSync(path.join(dir, 'token'), 'browsertoken\n');
    const small = path.join(dir, 'photo é 1.bin');
    const content = randomBytes(300 * 1024);
    fs.writeFileSync(small, content);
    // over the limit: 4 MiB by default; GRACED_BROWSER_BIG_MB=2048 for the
    // 2 GiB drop (a sparse file: no disk used)
    const big = path.join(dir, 'big.bin');
    fs.writeFileSync(big, Buffer.alloc(1024, 0x61));
    fs.truncateSync(big, Number(process.env.GRACED_BROWSER_BIG_MB || 4) * 1024 * 1024);

    const g = await startGraced(['--root', up, '--upload-dir', up, '--list-dirs',
                                 '--max-body-size', '1M',
                                 '--auth-token-file', path.join(dir, 'token')]);
    const browser = await puppeteer.launch({
        executablePath: CHROMIUM,
        headless: true,
        // root in a container: no user namespaces for chromium's sandbox
        args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-proxy-server'],
        timeout: 30000,
    });
    procs.push(browser.process());
    try {
        const page = await browser.newPage();
        page.setDefaultTimeout(30000);
        const base = `http://127.0.0.1:${g.port}/`;
        const resp = await page.goto(base);
        check('the listing opens (200) with the upload form',
              resp.status() === 200 && (await page.$('#upload input[type=file]')) !== null,
              resp.status());

        let a = await upload(page, small, 'browsertoken');
        check('form upload: the page shows 201', a.status === '201' && a.cls === 'ok', a);
        const stored = path.join(up, 'photo é 1.bin');
        check('form upload: stored byte for byte',
              fs.existsSync(stored) && fs.readFileSync(stored).equals(content),
              fs.readdirSync(up));

        await page.reload();
        const names = await page.$$eval('table a', (els) => els.map((e) => e.textContent));
        check('the listing shows the uploaded file', names.includes('photo é 1.bin'), names);

        a = await upload(page, big, 'browsertoken');
        check('over --max-body-size: the page shows the 413 answer, not a failed connection',
              a.status === '413' && /413/.test(a.text) && a.cls === 'err', a);
        check('the refused file is not stored', !fs.existsSync(path.join(up, 'big.bin')),
              fs.readdirSync(up));

        a = await upload(page, small, 'wrong');
        check('a wrong token: the page shows the 401 answer', a.status === '401' && /401/.test(a.text), a);

        check('no temporary files left',
              !fs.readdirSync(up).some((n) => n.startsWith('.graced-tmp')), fs.readdirSync(up));
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
