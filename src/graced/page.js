// SPDX-License-Identifier: BSD-3-Clause
// graced's page script (page.c embeds it; it runs by the page's CSP nonce).
// What the page does without it stays: links, sorting, search, the upload
// form. With it: uploads one file at a time with progress, speed and a
// cancel button (chosen files, a whole folder keeping its paths, or files
// and folders dropped on the page), the listing refreshed after, errors
// that say what happened, and for who may write: delete, rename or move,
// new folder, each asked first, each the same HTTP request a client would
// send (DELETE, MOVE, MKCOL). No inline handlers, nothing from elsewhere.
(function () {
  'use strict';
  var body = document.body, data = body.dataset;
  var answer = document.getElementById('answer');
  var form = document.getElementById('upload');
  var list = document.getElementById('uploads');
  var maxBody = Number(data.max || 0);
  if (!answer || !window.fetch) return;

  // ---------------------------------------------------------------- helpers

  function human(n) {
    var u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'], i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : String(n)) + ' ' + u[i];
  }

  // a relative path ("a b/c.txt") as a URL path below this folder
  function encPath(p) {
    return p.split('/').map(encodeURIComponent).join('/');
  }

  function folder() {
    return location.pathname.replace(/[^\/]*$/, '');
  }

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // The status line (announced: role=status): a status number, the words
  // for it, and what happened.
  function say(status, text, ok) {
    answer.dataset.status = String(status);
    answer.className = ok ? 'ok' : 'err';
    answer.textContent = text;
  }

  var reasons = {
    0: 'No answer', 201: 'Created', 204: 'No Content', 400: 'Bad Request', 401: 'Unauthorized',
    403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed', 409: 'Conflict',
    412: 'Precondition Failed', 413: 'Content Too Large', 414: 'URI Too Long',
    423: 'Locked', 429: 'Too Many Requests', 500: 'Internal Server Error',
    503: 'Service Unavailable', 507: 'Insufficient Storage'
  };

  // What a failed request means, in words: the server's text, and what the
  // status says that the text may not.
  function explain(status, text, what) {
    text = (text || '').replace(/\s+$/, '');
    switch (status) {
    case 0: return 'the connection failed before an answer came';
    case 401: return (what ? what + ': ' : '') + (form && form.elements.token ?
      'the upload token is missing or wrong' : 'a login is needed') +
      (text ? ' (' + text + ')' : '');
    case 403: return (what ? what + ': ' : '') + (text || 'not allowed');
    case 413: // the limit in words, whatever the answer says of it
      return (what ? what + ': ' : '') + (/\d/.test(text) && /--max-body-size/.test(text) ? text :
        'over the upload limit' + (maxBody ? ' of ' + human(maxBody) : '') +
        ' (--max-body-size)' + (text ? ': ' + text : ''));
    case 423: // a WebDAV lock (its answer is XML): who holds it is not told
      return (what ? what + ': ' : '') + 'locked: someone holds a WebDAV lock on it' +
        (/<[^>]*:?lock-token-submitted/.test(text) ? '' : text ? ' (' + text + ')' : '');
    case 507: return 'disk full: the server has no room' + (what ? ' for ' + what : '') +
      (text ? ' (' + text + ')' : '');
    default: return (what ? what + ': ' : '') + (text || 'failed');
    }
  }

  function line(status, msg) {
    return status + ' ' + (reasons[status] || '') + ': ' + msg;
  }

  function authHeaders(h) {
    var t = form && form.elements.token;
    if (t && t.value) h.Authorization = 'Bearer ' + t.value;
    return h;
  }

  // Ask in a dialog: a question, maybe a text to edit. Resolves to the
  // text (or true), or null when cancelled.
  var dialog;
  function ask(question, opts) {
    opts = opts || {};
    if (!dialog) {
      dialog = el('dialog', { id: 'ask', 'aria-labelledby': 'ask-q' });
      dialog.innerHTML = '<form method="dialog"><p id="ask-q"></p>' +
        '<p id="ask-field"><label class="vh" for="ask-input">Name</label>' +
        '<input id="ask-input" autocomplete="off" spellcheck="false"></p><menu>' +
        '<button type="button" id="ask-cancel">Cancel</button>' +
        '<button type="submit" id="ask-ok" class="primary">OK</button></menu></form>';
      body.appendChild(dialog);
    }
    var q = document.getElementById('ask-q'), input = document.getElementById('ask-input');
    var field = document.getElementById('ask-field'), okb = document.getElementById('ask-ok');
    var cancel = document.getElementById('ask-cancel'), f = dialog.querySelector('form');
    q.textContent = question;
    okb.textContent = opts.ok || 'OK';
    okb.className = opts.danger ? 'primary danger' : 'primary';
    field.hidden = opts.value === undefined;
    input.value = opts.value || '';
    return new Promise(function (resolve) {
      function done(v) {
        f.removeEventListener('submit', submit);
        cancel.removeEventListener('click', no);
        dialog.removeEventListener('cancel', no);
        if (dialog.open) dialog.close();
        resolve(v);
      }
      function submit(e) {
        e.preventDefault();
        done(opts.value === undefined ? true : input.value);
      }
      function no(e) { if (e) e.preventDefault(); done(null); }
      f.addEventListener('submit', submit);
      cancel.addEventListener('click', no);
      dialog.addEventListener('cancel', no);
      dialog.showModal();
      if (opts.value !== undefined) {
        input.focus();
        var dot = input.value.lastIndexOf('.');
        input.setSelectionRange(0, dot > 0 ? dot : input.value.length);
      } else {
        okb.focus();
      }
    });
  }

  // ---------------------------------------------------------------- the listing

  // Fetch this page again and put its table and count in place of ours.
  function refresh() {
    return fetch(location.href, { headers: { Accept: 'text/html' }, cache: 'no-store',
                                  credentials: 'same-origin' })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, 'text/html');
        ['list', 'count'].forEach(function (id) {
          var n = doc.getElementById(id), o = document.getElementById(id);
          if (n && o) o.replaceWith(document.importNode(n, true));
        });
        decorate();
        body.dataset.refreshed = String(Number(body.dataset.refreshed || 0) + 1);
      })
      .catch(function () { /* the old listing stays */ });
  }

  function target(tr) {
    return folder() + encodeURIComponent(tr.dataset.name) + (tr.dataset.dir === '1' ? '/' : '');
  }

  function send(method, url, headers) {
    return fetch(url, { method: method, headers: authHeaders(headers || {}),
                        credentials: 'same-origin' })
      .then(function (r) {
        return r.text().then(function (t) { return { status: r.status, text: t }; });
      }, function () { return { status: 0, text: '' }; });
  }

  function remove(tr) {
    var name = tr.dataset.name, dir = tr.dataset.dir === '1';
    ask('Delete ' + (dir ? 'the folder ' : '') + '\u201c' + name + '\u201d?',
        { ok: 'Delete', danger: true }).then(function (yes) {
      if (!yes) return;
      send('DELETE', target(tr)).then(function (r) {
        if (r.status >= 200 && r.status < 300) {
          say(r.status, line(r.status, 'deleted ' + name), true);
          refresh();
        } else {
          say(r.status, line(r.status, explain(r.status, r.status === 409 && dir ?
            r.text || 'the folder is not empty' : r.text, name)), false);
        }
      });
    });
  }

  // A new name, or a path: "b.txt", "sub/b.txt", "../b.txt", "/a/b.txt".
  function resolve(to) {
    var parts = (to.charAt(0) === '/' ? '' : folder()).split('/').concat(to.split('/'));
    var out = [];
    parts.forEach(function (p) {
      if (p === '..') out.pop();
      else if (p && p !== '.') out.push(p);
    });
    return '/' + out.map(encodeURIComponent).join('/');
  }

  function rename(tr) {
    var name = tr.dataset.name, dir = tr.dataset.dir === '1';
    ask('Rename or move \u201c' + name + '\u201d to:', { value: name, ok: 'Rename' })
      .then(function (to) {
        if (to === null || !to.trim() || to === name) return;
        var dest = location.origin + resolve(to.trim()) + (dir ? '/' : '');
        send('MOVE', target(tr), { Destination: dest, Overwrite: 'F' }).then(function (r) {
          if (r.status >= 200 && r.status < 300) {
            say(r.status, line(r.status, 'renamed ' + name + ' to ' + to.trim()), true);
            refresh();
          } else {
            say(r.status, line(r.status, explain(r.status, r.status === 412 ?
              'something named ' + to.trim() + ' is there already' : r.text, name)), false);
          }
        });
      });
  }

  function newFolder() {
    ask('New folder:', { value: '', ok: 'Create' }).then(function (name) {
      if (name === null || !name.trim()) return;
      name = name.trim();
      send('MKCOL', folder() + encPath(name) + '/').then(function (r) {
        if (r.status >= 200 && r.status < 300) {
          say(r.status, line(r.status, 'created the folder ' + name), true);
          refresh();
        } else {
          say(r.status, line(r.status, explain(r.status, r.status === 405 ?
            r.text || 'something named ' + name + ' is there already' : r.text, name)), false);
        }
      });
    });
  }

  // Buttons for the rows this user may change (data-w, set by the server).
  function decorate() {
    var rows = document.querySelectorAll('#list tr[data-w="1"]');
    for (var i = 0; i < rows.length; i++) {
      var tr = rows[i], cell = tr.querySelector('td.act');
      if (!cell || cell.firstChild) continue;
      var ren = el('button', { type: 'button', class: 'rename',
                               'aria-label': 'Rename ' + tr.dataset.name }, 'Rename');
      var del = el('button', { type: 'button', class: 'delete danger',
                               'aria-label': 'Delete ' + tr.dataset.name }, 'Delete');
      ren.addEventListener('click', rename.bind(null, tr));
      del.addEventListener('click', remove.bind(null, tr));
      cell.appendChild(ren);
      cell.appendChild(del);
    }
  }

  // ---------------------------------------------------------------- uploads

  var queue = [], running = false, batch = null;

  // One upload by PUT, the file streamed from disk by the browser.
  function putUpload(item, progress) {
    var x = new XMLHttpRequest();
    var done = new Promise(function (resolve) {
      x.open('PUT', folder() + encPath(item.path));
      var h = authHeaders({});
      for (var k in h) x.setRequestHeader(k, h[k]);
      x.upload.onprogress = function (ev) { if (ev.lengthComputable) progress(ev.loaded); };
      x.onload = function () { resolve({ status: x.status, text: x.responseText }); };
      x.onerror = function () { resolve({ status: 0, text: '' }); };
      x.onabort = function () { resolve({ status: -1, text: '' }); };
      x.send(item.file);
    });
    return { done: done, cancel: function () { x.abort(); } };
  }

  // base64 of a name's UTF-8 bytes (tus metadata)
  function b64(str) {
    var bytes = new TextEncoder().encode(str), bin = '';
    for (var i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
    return btoa(bin);
  }

  // One XHR: resolves to { status, text, get(header) }; status 0: the
  // connection failed, -1: cancelled.
  function xhr(method, url, headers, body, progress, hold) {
    return new Promise(function (resolve) {
      var x = new XMLHttpRequest();
      hold.x = x;
      x.open(method, url);
      for (var k in headers) x.setRequestHeader(k, headers[k]);
      if (progress) x.upload.onprogress = function (ev) { progress(ev.loaded); };
      function end(status) {
        hold.x = null;
        resolve({ status: status, text: status > 0 ? x.responseText : '',
                  get: function (h) { return status > 0 ? x.getResponseHeader(h) : null; } });
      }
      x.onload = function () { end(x.status); };
      x.onerror = function () { end(0); };
      x.ontimeout = function () { end(0); };
      x.onabort = function () { end(-1); };
      x.send(body === undefined ? null : body);
    });
  }

  // One upload, resumable (tus 1.0, graced.8 RESUMABLE UPLOADS): a POST to
  // the folder makes it (a refusal, 401 or 413, comes before any byte is
  // sent), PATCHes send the bytes; a dropped connection is retried, asking
  // the server where it got to (HEAD), so no byte it has is sent again.
  // Cancel ends the upload on the server too (DELETE).
  var RETRIES = [1, 2, 4, 8, 15, 30, 30, 30, 30, 30]; // seconds: ~3 min of a lost link
  function tusUpload(item, progress) {
    var hold = { x: null }, cancelled = false, url = null;
    var slash = item.path.lastIndexOf('/');
    var dir = folder() + (slash > 0 ? encPath(item.path.slice(0, slash)) + '/' : '');
    var name = item.path.slice(slash + 1), size = item.file.size;
    function tus(h) {
      h['Tus-Resumable'] = '1.0.0';
      return authHeaders(h);
    }
    function wait(s) {
      return new Promise(function (r) { setTimeout(r, s * 1000); });
    }
    function retrying(n, why) {
      item.retries = (item.retries || 0) + 1;
      item.st.textContent = why + '; trying again in ' + RETRIES[n] + ' s\u2026';
      return wait(RETRIES[n]);
    }
    // the server's offset, after a failure
    function where(n) {
      return xhr('HEAD', url, tus({}), undefined, null, hold).then(function (r) {
        if (cancelled) return { status: -1 };
        if (r.status === 200 && r.get('Upload-Offset') !== null)
          return send(Number(r.get('Upload-Offset')), 0);
        if (r.status === 0 && n < RETRIES.length)
          return retrying(n, 'the connection is lost').then(function () { return where(n + 1); });
        return r;
      });
    }
    function send(offset, n) {
      if (offset >= size) return Promise.resolve({ status: 201, text: '' });
      progress(offset);
      return xhr('PATCH', url, tus({ 'Upload-Offset': String(offset),
                                     'Content-Type': 'application/offset+octet-stream' }),
                 item.file.slice(offset), function (sent) { progress(offset + sent); }, hold)
        .then(function (r) {
          if (cancelled) return { status: -1 };
          if (r.status === 204) /* the file is stored: its creation's status */
            return { status: 201, text: r.text };
          if (r.status === 409 && r.get('Upload-Offset') !== null) /* told where it is */
            return send(Number(r.get('Upload-Offset')), n);
          // a request still writing it (423 with Retry-After) passes; a
          // WebDAV lock on the target (423 without) is for someone to lift
          if (([0, 502, 503, 504].indexOf(r.status) >= 0 ||
               (r.status === 423 && r.get('Retry-After'))) && n < RETRIES.length)
            return retrying(n, r.status ? 'the server is busy' : 'the connection is lost')
              .then(function () { return cancelled ? { status: -1 } : where(n + 1); });
          return r;
        });
    }
    var done = xhr('POST', dir, tus({ 'Upload-Length': String(size),
                                      'Upload-Metadata': 'filename ' + b64(name) }),
                   undefined, null, hold)
      .then(function (r) {
        if (cancelled) return { status: -1 };
        if (r.status === 405 || r.status === 500 || r.status === 501) { /* not here: a PUT */
          var up = putUpload(item, progress);
          hold.x = null;
          hold.put = up;
          return up.done;
        }
        if (r.status !== 201 || !r.get('Location')) return r;
        url = r.get('Location');
        item.li.dataset.url = url;
        return send(Number(r.get('Upload-Offset') || 0), 0).then(function (r) {
          // given up (a full disk, a refusal): the server need not keep
          // its bytes until they expire
          if (r.status !== 201 && r.status !== -1)
            xhr('DELETE', url, tus({}), undefined, null, {});
          return r;
        });
      });
    return {
      done: done,
      cancel: function () {
        cancelled = true;
        if (hold.x) hold.x.abort();
        if (hold.put) hold.put.cancel();
        if (url) xhr('DELETE', url, tus({}), undefined, null, {}); /* gone on the server too */
      }
    };
  }

  // resumable where the server says it speaks tus (the folder's OPTIONS
  // tells Tus-Version; data-tus on the page), a PUT for empty files
  var uploader = function (item, progress) {
    return data.tus === '1' && item.file.size > 0 ? tusUpload(item, progress)
                                                   : putUpload(item, progress);
  };

  function rate(item, sent) {
    var now = performance.now();
    item.samples.push([now, sent]);
    while (item.samples.length > 2 && now - item.samples[0][0] > 3000) item.samples.shift();
    var a = item.samples[0], dt = (now - a[0]) / 1000;
    return dt > 0.2 ? (sent - a[1]) / dt : 0;
  }

  function show(item, sent) {
    var size = item.file.size, pct = size ? Math.floor(100 * sent / size) : 100;
    var bps = rate(item, sent);
    item.bar.value = pct;
    item.st.textContent = pct + '% \u00b7 ' + human(sent) + ' of ' + human(size) +
      (bps ? ' \u00b7 ' + human(Math.round(bps)) + '/s' : '');
  }

  function next() {
    var item = queue.shift();
    if (!item) {
      running = false;
      finish();
      return;
    }
    running = true;
    item.li.classList.add('busy');
    item.samples = [];
    show(item, 0);
    var up = uploader(item, function (sent) { show(item, sent); });
    item.cancel = up.cancel;
    up.done.then(function (r) {
      item.cancel = null;
      item.button.remove(); /* nothing left to cancel */
      item.li.classList.remove('busy');
      if (r.status === -1) {
        item.st.textContent = 'cancelled';
        batch.cancelled++;
      } else if (r.status >= 200 && r.status < 300) {
        item.bar.value = 100;
        item.st.textContent = 'stored \u00b7 ' + human(item.file.size) +
          (item.retries ? ' \u00b7 resumed after a lost connection' : '');
        item.li.className = 'ok';
        batch.stored.push(item);
        batch.last = r.status;
      } else {
        item.st.textContent = line(r.status, explain(r.status, r.text, item.path));
        item.li.className = 'err';
        if (!batch.failed) batch.failed = { status: r.status, text: r.text, item: item };
      }
      next();
    });
  }

  // The batch is over: one line that says what happened, the listing again.
  function finish() {
    var b = batch, n = b.stored.length, size = 0;
    batch = null;
    b.stored.forEach(function (it) { size += it.file.size; });
    var stored = n === 1 ? 'stored ' + b.stored[0].path + ' (' + human(size) + ')'
      : 'stored ' + n + ' files (' + human(size) + ')';
    if (b.failed) {
      say(b.failed.status, line(b.failed.status, explain(b.failed.status, b.failed.text,
          b.failed.item.path)) + (n ? '; ' + stored : ''), false);
    } else if (n) {
      say(b.last, line(b.last, stored + (b.cancelled ? '; ' + b.cancelled + ' cancelled' : '') +
          (b.skipped ? '; ' + b.skipped + ' hidden files left out' : '')), true);
    } else {
      say(0, 'nothing stored' + (b.cancelled ? ': cancelled' : ''), false);
    }
    if (n) refresh();
  }

  // files: [{ file, path }] with path relative to this folder ("a/b.txt")
  function add(files) {
    if (!files.length) return;
    if (!batch) batch = { stored: [], cancelled: 0, failed: null, last: 0, skipped: 0 };
    files.forEach(function (f) {
      // dot-names are not taken (unless --show-hidden): say so, do not try
      if (/(^|\/)\./.test(f.path) && data.hidden !== '1') {
        batch.skipped++;
        return;
      }
      var item = { file: f.file, path: f.path };
      item.li = el('li');
      item.li.appendChild(el('span', { class: 'nm' }, f.path));
      item.button = el('button', { type: 'button', 'aria-label': 'Cancel ' + f.path }, 'Cancel');
      item.bar = el('progress', { max: '100', value: '0', 'aria-label': f.path });
      item.st = el('span', { class: 'st' }, 'waiting');
      item.li.appendChild(item.button);
      item.li.appendChild(item.st);
      item.li.appendChild(item.bar);
      item.button.addEventListener('click', function () {
        var i = queue.indexOf(item);
        if (i >= 0) {
          queue.splice(i, 1);
          item.button.remove();
          item.st.textContent = 'cancelled';
          batch.cancelled++;
        } else if (item.cancel) {
          item.cancel();
        }
      });
      list.appendChild(item.li);
      queue.push(item);
    });
    say('', 'uploading ' + queue.length + ' file' + (queue.length === 1 ? '' : 's') + '\u2026', true);
    delete answer.dataset.status;
    if (!running) next();
  }

  function fromInput(input) {
    var out = [];
    for (var i = 0; i < input.files.length; i++) {
      var f = input.files[i];
      out.push({ file: f, path: f.webkitRelativePath || f.name });
    }
    return out;
  }

  // Dropped folders: their files, with paths, through the entries API.
  function walk(entry, prefix) {
    if (entry.isFile)
      return new Promise(function (res) {
        entry.file(function (f) { res([{ file: f, path: prefix + entry.name }]); },
                   function () { res([]); });
      });
    var reader = entry.createReader(), all = [];
    return new Promise(function (res) {
      (function more() {
        reader.readEntries(function (got) {
          if (got.length) {
            all.push.apply(all, got);
            more();
            return;
          }
          Promise.all(all.map(function (e) { return walk(e, prefix + entry.name + '/'); }))
            .then(function (lists) { res([].concat.apply([], lists)); });
        }, function () { res([]); });
      })();
    });
  }

  function dropped(dt) {
    var walks = [], plain = [];
    // entries must be taken while the drop event lasts
    if (dt.items && dt.items.length) {
      for (var i = 0; i < dt.items.length; i++) {
        var it = dt.items[i];
        if (it.kind !== 'file') continue;
        var en = it.webkitGetAsEntry ? it.webkitGetAsEntry() : null;
        if (en) walks.push(walk(en, ''));
        else if (it.getAsFile()) plain.push({ file: it.getAsFile(), path: it.getAsFile().name });
      }
    } else {
      for (var j = 0; j < dt.files.length; j++)
        plain.push({ file: dt.files[j], path: dt.files[j].name });
    }
    return Promise.all(walks).then(function (lists) { return plain.concat.apply(plain, lists); });
  }

  function hasFiles(e) {
    var t = e.dataTransfer && e.dataTransfer.types;
    return !!t && Array.prototype.indexOf.call(t, 'Files') >= 0;
  }

  // ---------------------------------------------------------------- set up

  if (form && list) {
    form.addEventListener('submit', function (e) {
      e.preventDefault();
      add(fromInput(form.elements.file));
      form.elements.file.value = '';
    });
    if (data.write === '1' || form.elements.token) {
      // a whole folder, its paths kept (folders are made as needed)
      var tools = form.parentNode;
      var pick = el('input', { type: 'file', id: 'folder', class: 'vh', webkitdirectory: '',
                               multiple: '', tabindex: '-1', 'aria-hidden': 'true' });
      var pickb = el('button', { type: 'button', id: 'folder-button' }, 'Upload a folder');
      pickb.addEventListener('click', function () { pick.click(); });
      pick.addEventListener('change', function () {
        add(fromInput(pick));
        pick.value = '';
      });
      var zip = document.getElementById('zip');
      tools.insertBefore(pick, zip);
      tools.insertBefore(pickb, zip);
      if (data.write === '1') {
        var mk = el('button', { type: 'button', id: 'mkdir' }, 'New folder');
        mk.addEventListener('click', newFolder);
        tools.insertBefore(mk, zip);
      }
      var depth = 0;
      document.addEventListener('dragenter', function (e) {
        if (!hasFiles(e)) return;
        depth++;
        body.classList.add('dragging');
      });
      document.addEventListener('dragleave', function (e) {
        if (!hasFiles(e)) return;
        if (--depth <= 0) {
          depth = 0;
          body.classList.remove('dragging');
        }
      });
      document.addEventListener('dragover', function (e) {
        if (!hasFiles(e)) return;
        e.preventDefault();
        e.dataTransfer.dropEffect = 'copy';
      });
      document.addEventListener('drop', function (e) {
        if (!hasFiles(e)) return;
        e.preventDefault();
        depth = 0;
        body.classList.remove('dragging');
        dropped(e.dataTransfer).then(add);
      });
    }
  }
  decorate();
})();
