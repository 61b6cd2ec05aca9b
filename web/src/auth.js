// Sign-in: the session cookie is set by POST /api/v1/auth/login; /api/v1/auth/me says who is signed in and hands
// out the CSRF token that state-changing requests must send.

import { ApiError, request, setCsrfToken } from "./api.js";
import "./account.css";
import { h } from "./dom.js";

/** The signed-in user ({username, is_admin}) or null; sets the CSRF token as a side effect. */
export async function currentUser() {
  try {
    const me = await request("GET", "auth/me");
    setCsrfToken(me.csrf_token);
    return me.user;
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      setCsrfToken(e.body?.csrf_token);
      return null;
    }
    throw e;
  }
}

export class LoginView {
  constructor(root, onSignedIn) {
    this.root = root;
    this.onSignedIn = onSignedIn;
    this.user = null;
    this.signedIn = false;
    this.username = h("input", { id: "login-username", name: "username", autocomplete: "username", required: true,
      dataset: { testid: "login-username" } });
    this.password = h("input", { id: "login-password", name: "password", type: "password", required: true,
      autocomplete: "current-password", dataset: { testid: "login-password" } });
    this.error = h("p", { class: "form-error", role: "alert", dataset: { testid: "login-error" } });
    this.button = h("button", { type: "submit", class: "btn primary", dataset: { testid: "login-submit" } }, "Sign in");
    root.append(
      h(
        "form",
        { class: "card login", onsubmit: (e) => this.submit(e) },
        h("h2", { text: "Sign in to adbreak" }),
        h("label", { for: "login-username" }, "User"),
        this.username,
        h("label", { for: "login-password" }, "Password"),
        this.password,
        this.error,
        this.button,
      ),
    );
  }

  show() {
    this.signedIn = false;
    this.user = null;
    this.root.hidden = false;
    this.username.focus();
  }

  async submit(e) {
    e.preventDefault();
    this.error.textContent = "";
    this.button.disabled = true;
    try {
      await currentUser(); // a fresh CSRF token for this session
      const res = await request("POST", "auth/login", {
        body: { username: this.username.value, password: this.password.value },
      });
      setCsrfToken(res.csrf_token);
      this.user = res.user;
      this.signedIn = true;
      this.password.value = "";
      this.root.hidden = true;
      this.onSignedIn(res.user);
    } catch (err) {
      this.error.textContent = err.message;
    } finally {
      this.button.disabled = false;
    }
  }

  async signOut() {
    try {
      await request("POST", "auth/logout");
    } catch (e) {
      console.warn("adbreak: sign-out failed:", e.message);
    }
    this.signedIn = false;
    this.user = null;
  }
}
