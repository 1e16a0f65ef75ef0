// The sign-in page: shows why the last attempt failed (the server puts the
// reason in ?error=; it is shown as text, never as HTML).
const reason = new URLSearchParams(location.search).get('error');
if (reason) {
  const p = document.getElementById('error');
  p.textContent = reason;
  p.hidden = false;
}
