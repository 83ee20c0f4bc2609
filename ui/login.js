// Orca dashboard sign-in: posts the admin token as JSON to /ui/login (same origin); the server
// answers with an HttpOnly session cookie, then the dashboard is at /ui. No data from the server
// is ever put in the page as HTML.
const form = document.getElementById('login');
const input = document.getElementById('token');
const error = document.getElementById('error');
const submit = document.getElementById('submit');

function showError(text) {
  error.textContent = text;
  error.hidden = false;
}

form.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const token = input.value.trim();
  if (token === '') {
    showError('Enter the admin token.');
    input.focus();
    return;
  }
  error.hidden = true;
  submit.disabled = true;
  try {
    const res = await fetch('/ui/login', {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ token }),
    });
    if (res.ok) {
      input.value = '';
      window.location.replace('/ui');
      return;
    }
    let message = `sign-in failed (HTTP ${res.status})`;
    try {
      const body = await res.json();
      if (res.status === 401) message = 'Wrong token.';
      else if (body && typeof body.message === 'string') message = body.message.slice(0, 300);
    } catch {
      if (res.status === 401) message = 'Wrong token.';
    }
    if (res.status === 429) message = 'Too many wrong tokens: wait a moment and try again.';
    showError(message);
    input.select();
  } catch (err) {
    showError(`The server cannot be reached (${String(err && err.message ? err.message : err).slice(0, 200)}).`);
  } finally {
    submit.disabled = false;
  }
});
