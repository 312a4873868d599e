import puppeteer from 'puppeteer-core';
const b = await puppeteer.launch({executablePath: '/usr/bin/chromium', headless: true, args: ['--no-sandbox','--disable-gpu']});
const p = await b.newPage();
await p.goto('http://127.0.0.1:8393/');
await (await p.$('#upload input[type=file]')).uploadFile('/tmp/pg/200k');
await p.click('#upload button[type=submit]');
for (let i = 0; i < 8; i++) {
  await new Promise(r => setTimeout(r, 1000));
  console.log(await p.$eval('#uploads', e => e.textContent), '|', await p.$eval('#answer', e => e.textContent));
}
await b.close();
