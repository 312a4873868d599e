// SPDX-License-Identifier: BSD-3-Clause
// graced's page (issue 19) driven in real browsers (Debian's chromium and
// firefox-esr, headless, see lib.mjs), everything checked on disk and in
// the page, not only clicked:
//  - uploads from the form (several files, the listing refreshed after,
//    stored byte for byte), dropped on the page (a DragEvent with files in
//    both browsers; in Chromium also a real drop of a file and a folder
//    through CDP), a whole folder (webkitdirectory: its paths kept), with
//    percent and speed shown and a cancel that stores nothing (Chromium,
//    its upload throttled);
//  - errors in words: a 413 names the limit, a full disk says so (graced
//    under prlimit --fsize), a wrong token says so;
//  - without JavaScript (Chromium), the form posts multipart and graced's
//    answer is a page that names what was stored;
//  - delete (cancelled, then confirmed), rename and move, new folder, each
//    asked in the page's dialog and answered by DELETE, MOVE, MKCOL;
//  - search, zip download (unzip -t on what Chromium saved);
//  - a resumable upload (tus) across a dropped connection: through a proxy
//    that paces the upload and cuts every connection at 40%, then refuses
//    new ones for 2 s (a Wi-Fi gone): the page retries, asks graced where it
//    got to, sends the rest; the file is byte for byte, and graced received
//    no byte twice (counted at the proxy);
//  - login and logout (--users-file): a writer gets the upload form and
//    the buttons, a reader neither; after logout the page is nobody's;
//  - the look, measured: no horizontal overflow at 390 px, a 255-byte name
//    wraps inside the screen, the computed background is dark under
//    prefers-color-scheme: dark and light otherwise, text and links reach
//    WCAG AA contrast (4.5:1) in both; the screenshots are decoded (PNG)
//    and their width and brightness checked; no CSP violation, no script
//    error. GRACED_SCREENSHOTS=DIR keeps them (README's picture comes from
//    here).
// Bounded (4 min); every process started is killed by PID.
// Usage: node page.mjs GRACED_BINARY
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import zlib from 'node:zlib';
import {
    browsers, check, leftovers, note, run, startGraced, tempDir, withBrowser,
} from './lib.mjs';

const LONG = 'a-very-long-name-' + 'x'.repeat(230) + '.txt'; // 251 bytes
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ------------------------------------------------------------------ PNG

/** Decode an 8-bit RGB or RGBA PNG (what browsers' screenshots are). */
function decodePng(buf) {
    let pos = 8, width = 0, height = 0, type = 0;
    const idat = [];
    while (pos < buf.length) {
        const len = buf.readUInt32BE(pos), kind = buf.toString('latin1', pos + 4, pos + 8);
        const data = buf.subarray(pos + 8, pos + 8 + len);
        if (kind === 'IHDR') {
            width = data.readUInt32BE(0);
            height = data.readUInt32BE(4);
            if (data[8] !== 8 || data[12] !== 0) throw new Error('PNG: not 8-bit, or interlaced');
            type = data[9];
        } else if (kind === 'IDAT') {
            idat.push(data);
        }
        pos += 12 + len;
    }
    const bpp = type === 6 ? 4 : type === 2 ? 3 : 0;
    if (!bpp) throw new Error('PNG: colour type ' + type);
    const raw = zlib.inflateSync(Buffer.concat(idat)), stride = width * bpp;
    const px = Buffer.alloc(height * stride);
    for (let y = 0; y < height; y++) {
        const f = raw[y * (stride + 1)], src = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
        for (let x = 0; x < stride; x++) {
            const a = x >= bpp ? px[y * stride + x - bpp] : 0;
            const b = y ? px[(y - 1) * stride + x] : 0;
            const c = x >= bpp && y ? px[(y - 1) * stride + x - bpp] : 0;
            let v = src[x];
            if (f === 1) v += a;
            else if (f === 2) v += b;
            else if (f === 3) v += (a + b) >> 1;
            else if (f === 4) {
                const p = a + b - c, pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
                v += pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
            }
            px[y * stride + x] = v & 255;
        }
    }
    return { width, height, bpp, px };
}

/** Mean relative brightness (0..1) of a decoded PNG. */
function brightness(img) {
    let sum = 0, n = 0;
    for (let i = 0; i < img.px.length; i += img.bpp * 7) { // a sample is plenty
        sum += 0.2126 * img.px[i] + 0.7152 * img.px[i + 1] + 0.0722 * img.px[i + 2];
        n++;
    }
    return sum / n / 255;
}

// ------------------------------------------------------------------ the look

/** Geometry, colours and contrasts, measured in the page. */
function measure(page) {
    return page.evaluate((long) => {
        const rgb = (s) => (s.match(/[\d.]+/g) || []).map(Number);
        const lum = (c) => {
            const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
            return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]);
        };
        const bgOf = (el) => {
            for (; el; el = el.parentElement) {
                const c = rgb(getComputedStyle(el).backgroundColor);
                if (c.length >= 3 && (c.length < 4 || c[3] > 0)) return c;
            }
            return [255, 255, 255];
        };
        const contrast = (el) => {
            if (!el) return 0;
            const a = lum(rgb(getComputedStyle(el).color)), b = lum(bgOf(el));
            return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
        };
        const cell = [...document.querySelectorAll('#list tr')].find((tr) => tr.dataset.name === long);
        const name = cell && cell.querySelector('td.name');
        const r = name ? name.getBoundingClientRect() : { right: 1e9, height: 0 };
        const widest = Math.max(...[...document.body.querySelectorAll('*')]
            .map((e) => e.getBoundingClientRect().right));
        return {
            scrollWidth: document.documentElement.scrollWidth, innerWidth,
            clientWidth: document.documentElement.clientWidth, // without a scroll bar
            widest, longRight: r.right, longHeight: r.height,
            lineHeight: name ? parseFloat(getComputedStyle(name).lineHeight) || 24 : 0,
            bodyBg: bgOf(document.body), bodyLum: lum(bgOf(document.body)),
            contrast: {
                text: contrast(document.querySelector('h1')),
                link: contrast(document.querySelector('#list td.name a')),
                muted: contrast(document.querySelector('#list td.size')),
                button: contrast(document.querySelector('#zip')),
                primary: contrast(document.querySelector('#upload button[type=submit]')),
                crumbs: contrast(document.querySelector('.crumbs a')),
            },
        };
    }, LONG);
}

async function look(name, page, g, width, dark, shots) {
    const tag = `${name} ${width} px ${dark ? 'dark' : 'light'}`;
    await page.setViewport({ width, height: 800, deviceScaleFactor: 1 });
    if (name === 'chromium')
        await page.emulateMediaFeatures([{ name: 'prefers-color-scheme', value: dark ? 'dark' : 'light' }]);
    await page.goto(g.url);
    const m = await measure(page);
    check(`${tag}: no horizontal overflow (document ${m.scrollWidth} px, widest element ` +
          `${Math.round(m.widest)} px, screen ${m.clientWidth} px beside its scroll bar)`,
          m.scrollWidth <= m.clientWidth && m.widest <= m.clientWidth + 0.5, m);
    check(`${tag}: the ${LONG.length}-byte name wraps inside the screen ` +
          `(${Math.round(m.longHeight)} px high)`,
          m.longRight <= m.clientWidth && m.longHeight > 1.5 * m.lineHeight, m);
    check(`${tag}: the computed background is ${dark ? 'dark' : 'light'} (rgb ${m.bodyBg})`,
          dark ? m.bodyLum < 0.05 : m.bodyLum > 0.8, m.bodyBg);
    const low = Object.entries(m.contrast).filter(([, v]) => v < 4.5);
    check(`${tag}: contrast of text, links, muted text, buttons at least 4.5:1 ` +
          `(lowest ${Math.min(...Object.values(m.contrast)).toFixed(1)})`, low.length === 0,
          m.contrast);
    const file = path.join(shots, `page-${name}-${width}-${dark ? 'dark' : 'light'}.png`);
    await page.screenshot({ path: file, fullPage: true });
    const img = decodePng(fs.readFileSync(file));
    const b = brightness(img);
    // a whole-page screenshot is as wide as the page: wider than the screen
    // (beside its scroll bar) if anything overflowed
    check(`${tag}: the screenshot is ${img.width} px wide (the screen: ${m.clientWidth} px) ` +
          `and ${dark ? 'dark' : 'light'} (brightness ${b.toFixed(2)})`,
          img.width === m.clientWidth && img.width <= width && (dark ? b < 0.3 : b > 0.7),
          { w: img.width, h: img.height, b });
}

// ------------------------------------------------------------------ helpers

/** Wait until the status line has an answer; what it says. */
async function answer(page, timeout = 30000) {
    await page.waitForSelector('#answer[data-status]', { timeout });
    return page.$eval('#answer', (el) => ({ status: el.dataset.status, text: el.textContent,
                                            cls: el.className }));
}

async function clearAnswer(page) {
    await page.$eval('#answer', (el) => { delete el.dataset.status; el.textContent = ''; });
}

/** Wait for the listing to be fetched again after a change. */
async function refreshed(page, before, timeout = 30000) {
    await page.waitForFunction((n) => Number(document.body.dataset.refreshed || 0) > n,
                               { timeout }, before);
}

const refreshes = (page) => page.evaluate(() => Number(document.body.dataset.refreshed || 0));
const names = (page) => page.$$eval('#list tr[data-name]', (t) => t.map((e) => e.dataset.name));

function waitFor(cond, ms = 15000) {
    const t0 = Date.now();
    return new Promise((resolve) => {
        const tick = () => {
            if (cond()) resolve(true);
            else if (Date.now() - t0 > ms) resolve(false);
            else setTimeout(tick, 50);
        };
        tick();
    });
}

/** Click a row's button, answer the dialog (value: the text to type). */
async function rowAction(page, name, button, value, ok = true) {
    const rows = await page.$$('#list tr[data-name]');
    for (const tr of rows) {
        if ((await tr.evaluate((e) => e.dataset.name)) !== name) continue;
        await clearAnswer(page);
        await (await tr.$('button.' + button)).click();
        await page.waitForSelector('#ask[open]');
        if (value !== undefined)
            await page.$eval('#ask-input', (el, v) => { el.value = v; }, value);
        await page.click(ok ? '#ask-ok' : '#ask-cancel');
        return true;
    }
    return false;
}

async function syntheticDrop(page, files) {
    await page.evaluate((files) => {
        const dt = new DataTransfer();
        for (const [n, text] of files) dt.items.add(new File([text], n, { type: 'text/plain' }));
        const main = document.querySelector('main');
        for (const type of ['dragenter', 'dragover', 'drop'])
            main.dispatchEvent(new DragEvent(type, { bubbles: true, cancelable: true, dataTransfer: dt }));
    }, files);
}

// ------------------------------------------------------------------ a bad link

/**
 * A TCP proxy to graced: what the browser sends is paced at `rate` bytes/s
 * (answers are not); cut() ends every connection and refuses new ones for
 * `outage` ms. delivered: bytes handed to graced, all connections.
 */
function badLink(port, rate) {
    const conns = new Set();
    const link = { delivered: 0, cuts: 0, down: false, offsets: [] };
    const server = net.createServer((c) => {
        if (link.down) {
            c.destroy();
            return;
        }
        const up = net.connect(port, '127.0.0.1');
        const q = [];
        let queued = 0;
        const pair = { c, up };
        conns.add(pair);
        const tick = setInterval(() => {
            // a cut socket takes nothing more (its close event comes later:
            // a tick between would count bytes never sent)
            if (up.destroyed || c.destroyed) return;
            let quota = Math.floor(rate / 50);
            while (q.length && quota > 0) {
                const d = q[0];
                const n = Math.min(d.length, quota);
                up.write(d.subarray(0, n));
                link.delivered += n;
                quota -= n;
                queued -= n;
                if (n === d.length) q.shift(); else q[0] = d.subarray(n);
            }
            if (queued < 65536) c.resume();
        }, 20);
        const end = () => {
            clearInterval(tick);
            conns.delete(pair);
            c.destroy();
            up.destroy();
        };
        c.on('data', (d) => {
            // a request starts a chunk (the page waits for each answer):
            // the PATCHes' Upload-Offset, in order
            const head = d.toString('latin1', 0, Math.min(d.length, 2048));
            const m = /^PATCH [^ ]+ HTTP\/1\.1\r\n[\s\S]*?\r\nupload-offset: *(\d+)/i.exec(head);
            if (m) link.offsets.push(Number(m[1]));
            q.push(d);
            queued += d.length;
            if (queued >= 65536) c.pause();
        });
        up.on('data', (d) => c.write(d));
        c.on('close', end);
        up.on('close', end);
        c.on('error', end);
        up.on('error', end);
    });
    link.listen = () => new Promise((r) => server.listen(0, '127.0.0.1', () => {
        link.port = server.address().port;
        link.url = `http://127.0.0.1:${link.port}/`;
        r();
    }));
    link.cut = (outage) => {
        link.cuts++;
        link.down = true;
        for (const { c, up } of conns) {
            c.destroy();
            up.destroy();
        }
        conns.clear();
        setTimeout(() => { link.down = false; }, outage);
    };
    link.close = () => {
        for (const { c, up } of conns) {
            c.destroy();
            up.destroy();
        }
        server.close();
    };
    return link;
}

// ------------------------------------------------------------------ the test

run(async (graced) => {
    const dir = tempDir('page');
    const shots = process.env.GRACED_SCREENSHOTS || tempDir('page-shots');
    fs.mkdirSync(shots, { recursive: true });
    const src = path.join(dir, 'src');
    fs.mkdirSync(path.join(src, 'album', 'inner'), { recursive: true });
    const content = { 'one.txt': randomBytes(1000), 'two é.bin': randomBytes(200000),
                      'album/a.jpg': randomBytes(3000), 'album/inner/b.txt': Buffer.from('b\n') };
    for (const [n, d] of Object.entries(content)) fs.writeFileSync(path.join(src, n), d);
    const big = path.join(src, 'big.bin');
    fs.writeFileSync(big, randomBytes(900 * 1024));
    fs.writeFileSync(path.join(src, 'locked.txt'), 'the new version\n');
    const over = path.join(src, 'over.bin');
    fs.writeFileSync(over, Buffer.alloc(2 * 1024 * 1024, 1));
    const users = path.join(dir, 'users');
    const hash = (pw) => execFileSync('openssl', ['passwd', '-6', pw]).toString().trim();
    fs.writeFileSync(users, `alice:${hash('alice pw')}:rw\nbob:${hash('bob pw')}:/:r\n`);

    for (const name of browsers()) {
        const root = path.join(dir, 'root-' + name);
        fs.mkdirSync(path.join(root, 'docs'), { recursive: true });
        fs.writeFileSync(path.join(root, 'keep.txt'), 'keep\n');
        fs.writeFileSync(path.join(root, 'victim.txt'), 'delete me\n');
        fs.writeFileSync(path.join(root, 'old name.txt'), 'rename me\n');
        fs.writeFileSync(path.join(root, 'docs', 'needle in docs.md'), 'n\n');
        fs.writeFileSync(path.join(root, LONG), 'long\n');
        const g = await startGraced(graced, ['--root', root, '--upload-dir', root,
                                             '--max-body-size', '1M']);
        await withBrowser(name, async (browser) => {
            const page = await browser.newPage();
            page.setDefaultTimeout(30000);
            const errors = [];
            page.on('pageerror', (e) => errors.push(String(e)));
            await page.evaluateOnNewDocument(() => {
                window.__csp = [];
                document.addEventListener('securitypolicyviolation',
                                          (e) => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));
            });

            // the look: 390 px and a desktop, light and dark
            for (const [w, dark] of [[390, false], [390, true], [1000, false], [1000, true]]) {
                if (name === 'firefox' && dark) continue; // Firefox: its own launch below
                await look(name, page, g, w, dark, shots);
            }

            // accessibility basics
            await page.setViewport({ width: 1000, height: 800 });
            await page.goto(g.url);
            const a11y = await page.evaluate(() => ({
                lang: document.documentElement.lang,
                unlabelled: [...document.querySelectorAll('input:not([type=hidden])')]
                    .filter((i) => !i.labels.length && !i.getAttribute('aria-label') &&
                                   !i.classList.contains('vh')).map((i) => i.outerHTML),
                sorted: [...document.querySelectorAll('th[aria-sort]')].map((t) => t.getAttribute('aria-sort')),
                status: document.getElementById('answer').getAttribute('role'),
                nav: !!document.querySelector('nav[aria-label] [aria-current=page]'),
                searchLabel: document.querySelector('#q').labels.length,
            }));
            check(`${name}: lang, every field labelled, aria-sort on the sorted column, a status ` +
                  'region, breadcrumbs with the current folder marked',
                  a11y.lang === 'en' && a11y.unlabelled.length === 0 && a11y.sorted.join() === 'ascending' &&
                  a11y.status === 'status' && a11y.nav && a11y.searchLabel === 1, a11y);
            await page.click('th.size a');
            check(`${name}: sorting by size (a link: the server sorts) moves aria-sort`,
                  await page.$eval('th.size', (t) => t.getAttribute('aria-sort')) === 'ascending');
            await page.goto(g.url);

            // without JavaScript the form is plain HTML: a multipart POST,
            // answered by a page that says what was stored (Chromium:
            // Firefox's BiDi cannot switch scripts off)
            if (name === 'chromium') {
                const nojs = await browser.newPage();
                await nojs.setJavaScriptEnabled(false);
                await nojs.goto(g.url);
                await (await nojs.$('#upload input[type=file]')).uploadFile(
                    path.join(src, 'album', 'a.jpg'));
                await Promise.all([nojs.waitForNavigation(),
                                   nojs.click('#upload button[type=submit]')]);
                const said = await nojs.evaluate(() => document.body.innerText);
                note('without JavaScript the page says: ' + said.replace(/\s+/g, ' '));
                check(`${name}: without JavaScript the form still uploads: stored byte for byte, ` +
                      'and the answer is a page naming the file (not JSON)',
                      fs.existsSync(path.join(root, 'a.jpg')) &&
                      fs.readFileSync(path.join(root, 'a.jpg')).equals(content['album/a.jpg']) &&
                      /Stored/.test(said) && /a\.jpg/.test(said) && !/[{}]/.test(said), said);
                await nojs.close();
                fs.unlinkSync(path.join(root, 'a.jpg'));
            }

            // uploads: two files from the form, the listing refreshed
            let n0 = await refreshes(page);
            await clearAnswer(page);
            await (await page.$('#upload input[type=file]')).uploadFile(
                path.join(src, 'one.txt'), path.join(src, 'two é.bin'));
            await page.click('#upload button[type=submit]');
            let a = await answer(page);
            note('the page says: ' + a.text);
            check(`${name}: two files from the form: 201, said in words (not JSON)`,
                  a.status === '201' && /stored 2 files/.test(a.text) && !/[{}]/.test(a.text), a);
            check(`${name}: both stored byte for byte`,
                  fs.readFileSync(path.join(root, 'one.txt')).equals(content['one.txt']) &&
                  fs.readFileSync(path.join(root, 'two é.bin')).equals(content['two é.bin']));
            await refreshed(page, n0);
            let ls = await names(page);
            check(`${name}: the listing refreshed after the upload shows them`,
                  ls.includes('one.txt') && ls.includes('two é.bin'), ls);
            const items = await page.$$eval('#uploads li', (l) => l.map((e) => [e.className, e.textContent]));
            check(`${name}: each upload listed with its result`, items.length === 2 &&
                  items.every(([c, t]) => c === 'ok' && /stored/.test(t)), items);

            // errors in words
            await clearAnswer(page);
            await (await page.$('#upload input[type=file]')).uploadFile(over);
            await page.click('#upload button[type=submit]');
            a = await answer(page);
            note('the page says: ' + a.text);
            check(`${name}: over --max-body-size: 413, and the page names the limit (1 MiB)`,
                  a.status === '413' && /1(\.0)? MiB/.test(a.text) && /--max-body-size/.test(a.text) &&
                  a.cls === 'err', a);
            check(`${name}: the refused file is not stored`, !fs.existsSync(path.join(root, 'over.bin')));

            // a WebDAV lock someone holds on the name: 423 at the upload's
            // creation, said in words, the locked file untouched
            fs.writeFileSync(path.join(root, 'locked.txt'), 'held\n');
            const lk = await fetch(g.url + 'locked.txt', {
                method: 'LOCK', headers: { 'Content-Type': 'application/xml', Timeout: 'Second-60' },
                body: '<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/>' +
                      '</D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>' });
            const token = lk.headers.get('lock-token');
            await clearAnswer(page);
            await (await page.$('#upload input[type=file]')).uploadFile(path.join(src, 'locked.txt'));
            await page.click('#upload button[type=submit]');
            a = await answer(page);
            note('the page says: ' + a.text);
            check(`${name}: a file someone holds a WebDAV lock on: 423, "locked" in words (not ` +
                  'its XML), the file untouched', lk.status === 200 && a.status === '423' &&
                  /locked: someone holds a WebDAV lock/.test(a.text) && !/</.test(a.text) &&
                  fs.readFileSync(path.join(root, 'locked.txt'), 'utf8') === 'held\n', a);
            await fetch(g.url + 'locked.txt', { method: 'UNLOCK', headers: { 'Lock-Token': token } });
            fs.unlinkSync(path.join(root, 'locked.txt'));

            // dropped on the page (a DragEvent carrying files)
            n0 = await refreshes(page);
            await clearAnswer(page);
            await syntheticDrop(page, [['dropped.txt', 'dropped content']]);
            a = await answer(page);
            check(`${name}: a file dropped on the page is uploaded`, a.status === '201' &&
                  fs.readFileSync(path.join(root, 'dropped.txt'), 'utf8') === 'dropped content', a);
            await refreshed(page, n0);

            // a whole folder, its paths kept
            n0 = await refreshes(page);
            await clearAnswer(page);
            let folderOk = true;
            try {
                await (await page.$('#folder')).uploadFile(path.join(src, 'album'));
            } catch (e) {
                folderOk = false;
                note('folder input: ' + String(e).split('\n')[0].slice(0, 100));
            }
            if (folderOk) {
                a = await answer(page);
                note('the page says: ' + a.text);
                check(`${name}: a folder chosen (webkitdirectory): its files stored under their paths`,
                      a.status === '201' &&
                      fs.readFileSync(path.join(root, 'album', 'a.jpg')).equals(content['album/a.jpg']) &&
                      fs.readFileSync(path.join(root, 'album', 'inner', 'b.txt'), 'utf8') === 'b\n', a);
                await refreshed(page, n0);
            } else {
                check(`${name}: a folder chosen (webkitdirectory)`, name === 'firefox',
                      'the browser would not take a folder for the input');
            }

            if (name === 'chromium') {
                // a real drop (CDP Input.dispatchDragEvent): a file and a folder from disk
                n0 = await refreshes(page);
                await clearAnswer(page);
                const drag = { items: [], files: [path.join(src, 'album'), path.join(src, 'one.txt')],
                               dragOperationsMask: 1 };
                const at = { x: 300, y: 400 };
                await page.mouse.dragEnter(at, drag);
                await page.mouse.dragOver(at, drag);
                check(`${name}: dragging files over the page marks it`,
                      await page.evaluate(() => document.body.classList.contains('dragging')));
                fs.rmSync(path.join(root, 'album'), { recursive: true, force: true });
                await page.mouse.drop(at, drag);
                a = await answer(page);
                note('the page says: ' + a.text);
                check(`${name}: a folder and a file dropped from disk: all stored, paths kept`,
                      /^20[14]$/.test(a.status) && /stored 3 files/.test(a.text) &&
                      fs.readFileSync(path.join(root, 'album', 'inner', 'b.txt'), 'utf8') === 'b\n' &&
                      fs.readFileSync(path.join(root, 'album', 'a.jpg')).equals(content['album/a.jpg']),
                      a);
                await refreshed(page, n0);

                // a slow link: percent and speed shown; cancel stores nothing
                const cdp = await page.createCDPSession();
                await cdp.send('Network.enable');
                await cdp.send('Network.emulateNetworkConditions', {
                    offline: false, latency: 20, downloadThroughput: -1, uploadThroughput: 150 * 1024 });
                await clearAnswer(page);
                await (await page.$('#upload input[type=file]')).uploadFile(big);
                await page.click('#upload button[type=submit]');
                await page.waitForFunction(() => /\d+% · .* of .* · .*\/s/.test(
                    (document.querySelector('#uploads li:last-child .st') || {}).textContent || ''));
                const shown = await page.$eval('#uploads li:last-child .st', (e) => e.textContent);
                note('while it goes: ' + shown);
                const pct = Number(shown.match(/(\d+)%/)[1]);
                check(`${name}: a slow upload shows percent, bytes and speed`, pct < 100, shown);
                await page.click('#uploads li:last-child button');
                a = await answer(page);
                check(`${name}: cancel: the upload stops, nothing stored, the page says so`,
                      /cancelled/.test(a.text) && !fs.existsSync(path.join(root, 'big.bin')) &&
                      /cancelled/.test(await page.$eval('#uploads li:last-child .st',
                                                        (e) => e.textContent)), a);
                // the cancelled upload's files go (DELETE); a temporary
                // file of a PUT would be .graced-tmp.* beside the others
                const url = await page.$eval('#uploads li:last-child', (e) => e.dataset.url || '');
                const id = url.split('/').pop();
                const ups = path.join(root, '.graced-tmp.uploads');
                const temps = () => [...fs.readdirSync(root).filter((f) => f.startsWith('.graced-tmp') &&
                                                                   f !== '.graced-tmp.uploads'),
                                     ...(id ? fs.readdirSync(ups).filter((f) => f.startsWith(id)) : [])];
                check(`${name}: ... and graced removes its files (the upload ${id || '?'} ` +
                      'ended with DELETE)', id && await waitFor(() => temps().length === 0), temps());
                await cdp.send('Network.emulateNetworkConditions', {
                    offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });

                // the zip, downloaded by the browser
                const dl = tempDir('page-dl');
                await cdp.send('Browser.setDownloadBehavior', { behavior: 'allow', downloadPath: dl });
                await page.click('#zip');
                const zipName = /^files\.zip$/; // the top folder's zip
                const got = await waitFor(() => fs.readdirSync(dl).some((f) => zipName.test(f)), 30000);
                const zf = got ? path.join(dl, fs.readdirSync(dl).find((f) => zipName.test(f))) : null;
                let t = '';
                try {
                    t = zf ? execFileSync('unzip', ['-t', zf]).toString() : '';
                } catch (e) {
                    t = String(e.stdout || e);
                }
                check(`${name}: "Download as zip": the browser saves the folder, unzip -t finds no ` +
                      'error, every file in', /No errors detected/.test(t) && /keep\.txt/.test(t) &&
                      /album\/inner\/b\.txt/.test(t) && /docs\/needle in docs\.md/.test(t),
                      { files: fs.readdirSync(dl), t: t.slice(-400) });
            }

            // delete: cancelled, then confirmed
            await rowAction(page, 'victim.txt', 'delete', undefined, false);
            await sleep(300);
            check(`${name}: delete, cancelled in the dialog: the file stays`,
                  fs.existsSync(path.join(root, 'victim.txt')));
            n0 = await refreshes(page);
            await rowAction(page, 'victim.txt', 'delete');
            a = await answer(page);
            check(`${name}: delete, confirmed: 204, the file gone`, a.status === '204' &&
                  !fs.existsSync(path.join(root, 'victim.txt')), a);
            await refreshed(page, n0);
            check(`${name}: ... and gone from the listing`, !(await names(page)).includes('victim.txt'));

            // rename, move, new folder
            n0 = await refreshes(page);
            await rowAction(page, 'old name.txt', 'rename', 'new name.txt');
            a = await answer(page);
            check(`${name}: rename (MOVE): the file has its new name`, /^20[14]$/.test(a.status) &&
                  fs.readFileSync(path.join(root, 'new name.txt'), 'utf8') === 'rename me\n' &&
                  !fs.existsSync(path.join(root, 'old name.txt')), a);
            await refreshed(page, n0);
            await rowAction(page, 'new name.txt', 'rename', 'keep.txt');
            a = await answer(page);
            check(`${name}: rename onto a taken name: 412, said in words, nothing replaced`,
                  a.status === '412' && /there already/.test(a.text) &&
                  fs.readFileSync(path.join(root, 'keep.txt'), 'utf8') === 'keep\n', a);
            n0 = await refreshes(page);
            await rowAction(page, 'new name.txt', 'rename', 'docs/moved.txt');
            a = await answer(page);
            check(`${name}: move into a folder (a path typed)`, /^20[14]$/.test(a.status) &&
                  fs.existsSync(path.join(root, 'docs', 'moved.txt')), a);
            await refreshed(page, n0);
            n0 = await refreshes(page);
            await clearAnswer(page);
            await page.click('#mkdir');
            await page.waitForSelector('#ask[open]');
            await page.$eval('#ask-input', (el) => { el.value = 'made here'; });
            await page.click('#ask-ok');
            a = await answer(page);
            check(`${name}: new folder (MKCOL)`, a.status === '201' &&
                  fs.statSync(path.join(root, 'made here')).isDirectory(), a);
            await refreshed(page, n0);
            check(`${name}: ... listed`, (await names(page)).includes('made here'));

            // search
            await page.type('#q', 'needle');
            await Promise.all([page.waitForNavigation(), page.click('form.search button')]);
            const found = await page.$$eval('#list td.name a', (l) => l.map((e) => e.textContent));
            check(`${name}: search from the box: the match below, linked`,
                  found.length === 1 && found[0] === 'needle in docs.md', found);

            check(`${name}: no CSP violation, no script error`,
                  (await page.evaluate(() => window.__csp)).length === 0 && errors.length === 0,
                  { csp: await page.evaluate(() => window.__csp), errors });
        });
        if (name === 'firefox') { // the dark look, by the preference a user would set
            await withBrowser(name, async (browser) => {
                const page = await browser.newPage();
                await look(name, page, g, 390, true, shots);
                await look(name, page, g, 1000, true, shots);
            }, { dark: true });
        }
        check(`${name}: graced: SIGTERM exits 0`, (await g.stop()) === 0);

        // a resumable upload across a dropped connection
        const res = path.join(dir, 'resume-' + name);
        fs.mkdirSync(res);
        const gr = await startGraced(graced, ['--root', res, '--upload-dir', res]);
        const link = badLink(gr.port, 1024 * 1024);
        await link.listen();
        const four = path.join(src, 'four.bin');
        if (!fs.existsSync(four)) fs.writeFileSync(four, randomBytes(4 * 1024 * 1024));
        await withBrowser(name, async (browser) => {
            const page = await browser.newPage();
            page.setDefaultTimeout(60000);
            await page.goto(link.url);
            await clearAnswer(page);
            const before = link.delivered;
            await (await page.$('#upload input[type=file]')).uploadFile(four);
            await page.click('#upload button[type=submit]');
            const size = fs.statSync(four).size;
            await waitFor(() => link.delivered - before > 0.4 * size, 30000);
            link.cut(2000); // the Wi-Fi is gone for 2 s
            const handed = link.delivered - before;
            await page.waitForFunction(() => /lost/.test(
                (document.querySelector('#uploads li:last-child .st') || {}).textContent || ''));
            const during = await page.$eval('#uploads li:last-child .st', (e) => e.textContent);
            note('the page says meanwhile: ' + during);
            // what graced kept of the cut PATCH: its data file, once the
            // request is over (graced writes what it read, then lets go)
            const id = (await page.$eval('#uploads li:last-child', (e) => e.dataset.url || ''))
                .split('/').pop();
            const dataFile = path.join(res, '.graced-tmp.uploads', id);
            let kept = -1;
            await sleep(500);
            if (id && fs.existsSync(dataFile)) kept = fs.statSync(dataFile).size;
            note(`cut at ${(handed / size * 100).toFixed(0)}%: ${handed} bytes handed to graced, ` +
                 `${kept} kept by graced (the rest was in the sockets when they were cut)`);
            const a = await answer(page, 60000);
            const got = path.join(res, 'four.bin');
            const sent = link.delivered - before;
            note(`the page says: ${a.text}; ${sent} bytes handed to graced for ${size}; ` +
                 `PATCH offsets ${link.offsets.join(', ')}`);
            check(`${name}: tus across a dropped connection: the page said the link was lost, ` +
                  'then stored the file byte for byte', /lost/.test(during) && a.status === '201' &&
                  fs.existsSync(got) && fs.readFileSync(got).equals(fs.readFileSync(four)), a);
            check(`${name}: ... resumed at the offset graced kept (PATCH offsets ` +
                  `${link.offsets.join(', ')}): no byte graced had was sent again`,
                  link.offsets.length >= 2 && link.offsets[0] === 0 && kept > 0 &&
                  link.offsets[1] === kept, { offsets: link.offsets, kept });
            check(`${name}: ... in all ${sent} bytes handed to graced for ${size}: the file, the ` +
                  'requests\' headers, and what the cut sockets held', sent >= size &&
                  sent - size < (handed - kept) + 16 * 1024, { sent, size, handed, kept });
            check(`${name}: ... and the page says it resumed`,
                  /resumed/.test(await page.$eval('#uploads li:last-child .st', (e) => e.textContent)));
        });
        link.close();
        check(`${name}: graced (resumable): SIGTERM exits 0`, (await gr.stop()) === 0);

        // a full disk: graced may write 100 KiB a file (RLIMIT_FSIZE)
        const full = path.join(dir, 'full-' + name);
        fs.mkdirSync(full);
        const gf = await startGraced(graced, ['--root', full, '--upload-dir', full],
                                     { prefix: ['prlimit', '--fsize=102400'] });
        await withBrowser(name, async (browser) => {
            const page = await browser.newPage();
            page.setDefaultTimeout(30000);
            await page.goto(gf.url);
            await clearAnswer(page);
            await (await page.$('#upload input[type=file]')).uploadFile(path.join(src, 'two é.bin'));
            await page.click('#upload button[type=submit]');
            const a = await answer(page);
            note('the page says: ' + a.text);
            check(`${name}: a disk that cannot take the file: 507, and the page says "disk full"`,
                  a.status === '507' && /disk full/.test(a.text) && a.cls === 'err', a);
            // given up, the page ends the upload: nothing kept until it expires
            const left = () => [...fs.readdirSync(full).filter((f) => !f.startsWith('.graced-tmp')),
                                ...leftovers(full)];
            check(`${name}: nothing left of it on disk (the page ended the upload)`,
                  await waitFor(() => left().length === 0), left());
        });
        check(`${name}: graced (full disk): SIGTERM exits 0`, (await gf.stop()) === 0);

        // logins (--users-file): who may do what, shown; login and logout
        const share = path.join(dir, 'share-' + name);
        fs.mkdirSync(share);
        fs.writeFileSync(path.join(share, 'shared.txt'), 'shared\n');
        const gu = await startGraced(graced, ['--root', share, '--upload-dir', share,
                                              '--users-file', users]);
        await withBrowser(name, async (browser) => {
            const page = await browser.newPage();
            page.setDefaultTimeout(30000);
            await page.goto(gu.url);
            check(`${name}: nobody logged in: a login link, no upload form, no buttons`,
                  (await page.$('#login')) && !(await page.$('#upload')) &&
                  !(await page.$('#list button')));
            await Promise.all([page.waitForNavigation(), page.click('#login')]);
            await page.type('#user', 'alice');
            await page.type('#password', 'wrong');
            let resp = (await Promise.all([page.waitForNavigation(),
                                           page.click('form.login button[type=submit]')]))[0];
            check(`${name}: a wrong password: the login page again (401), saying so, no browser prompt`,
                  resp.status() === 401 && /Wrong user or password/.test(
                      await page.$eval('form.login', (f) => f.textContent)), resp.status());
            await page.type('#user', 'alice');
            await page.type('#password', 'alice pw');
            resp = (await Promise.all([page.waitForNavigation(),
                                       page.click('form.login button[type=submit]')]))[0];
            check(`${name}: alice logs in: back on the folder, named, told she may write here, ` +
                  'with the upload form and the buttons', resp.status() === 200 &&
                  (await page.$eval('.who .user', (e) => e.textContent)) === 'alice' &&
                  (await page.$eval('#may', (e) => e.textContent)) === 'may upload and change files here' &&
                  (await page.$('#upload')) && (await page.$('#list button.delete')), resp.status());
            // the header with a user, their rights and the logout, at 390 px
            await page.setViewport({ width: 390, height: 800 });
            const wide = await page.evaluate(() => ({
                doc: document.documentElement.scrollWidth, screen: document.documentElement.clientWidth,
                user: document.querySelector('.who .user').getBoundingClientRect().height,
                line: parseFloat(getComputedStyle(document.querySelector('.who .user')).lineHeight) || 24 }));
            check(`${name}: at 390 px, logged in: no horizontal overflow, the user's name on one line`,
                  wide.doc <= wide.screen && wide.user < 1.5 * wide.line, wide);
            await page.setViewport({ width: 1000, height: 800 });
            await clearAnswer(page);
            await (await page.$('#upload input[type=file]')).uploadFile(path.join(src, 'one.txt'));
            await page.click('#upload button[type=submit]');
            let a = await answer(page);
            check(`${name}: alice's upload (her session cookie): 201`, a.status === '201' &&
                  fs.existsSync(path.join(share, 'one.txt')), a);
            await Promise.all([page.waitForNavigation(), page.click('#logout')]);
            const after = await page.evaluate(async () => (await fetch('victim.txt',
                                                                       { method: 'PUT', body: 'x' })).status);
            check(`${name}: logout: the page is nobody's again, and the browser's next write ` +
                  'is refused (401: the session is over, no password kept)',
                  (await page.$('#login')) && !(await page.$('#upload')) && after === 401, after);
            await Promise.all([page.waitForNavigation(), page.click('#login')]);
            await page.type('#user', 'bob');
            await page.type('#password', 'bob pw');
            await Promise.all([page.waitForNavigation(), page.click('form.login button[type=submit]')]);
            check(`${name}: bob (/:r) logged in: named, told he may only read here, no upload ` +
                  'form and no buttons',
                  (await page.$eval('.who .user', (e) => e.textContent)) === 'bob' &&
                  (await page.$eval('#may', (e) => e.textContent)) === 'may only read here' &&
                  !(await page.$('#upload')) && !(await page.$('#list button')) &&
                  (await page.$eval('body', (b) => b.dataset.write)) === '0');
        });
        check(`${name}: graced (users): SIGTERM exits 0`, (await gu.stop()) === 0);
    }
}, { limitMs: 240000 });
