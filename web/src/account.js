// Account view (#/account): change your password, manage your API tokens and, for admins, the users.

import "./account.css";
import { request } from "./api.js";
import { h, setText } from "./dom.js";
import { fmtTime } from "./format.js";

const when = (ts) => (ts ? `${new Date(ts * 1000).toLocaleDateString()} ${fmtTime(ts)}` : "never");

export class AccountView {
  constructor(root) {
    this.root = root;
    this.me = null;
    this.pwError = h("p", { class: "form-error", role: "alert", dataset: { testid: "password-error" } });
    this.current = h("input", { type: "password", autocomplete: "current-password", dataset: { testid: "password-current" } });
    this.next = h("input", { type: "password", autocomplete: "new-password", minlength: 8, dataset: { testid: "password-new" } });
    this.tokenName = h("input", { placeholder: "e.g. home assistant", maxlength: 64, dataset: { testid: "token-name" } });
    this.tokenError = h("p", { class: "form-error", role: "alert" });
    this.newToken = h("div", { class: "new-token", hidden: true, dataset: { testid: "token-value" } });
    this.tokenBody = h("tbody", { dataset: { testid: "token-rows" } });
    this.userBody = h("tbody", { dataset: { testid: "user-rows" } });
    this.userName = h("input", { maxlength: 64, dataset: { testid: "user-new-name" } });
    this.userPassword = h("input", { type: "password", minlength: 8, autocomplete: "new-password", dataset: { testid: "user-new-password" } });
    this.userAdmin = h("input", { type: "checkbox", dataset: { testid: "user-new-admin" } });
    this.userError = h("p", { class: "form-error", role: "alert" });
    this.usersPanel = h(
      "section",
      { class: "panel card", hidden: true, dataset: { testid: "users-panel" } },
      h("h3", { text: "Users" }),
      h("div", { class: "table-wrap" }, h("table", {}, h("thead", {}, h("tr", {}, h("th", { text: "User" }), h("th", { text: "Admin" }), h("th", { text: "Last sign-in" }), h("th"))), this.userBody)),
      h(
        "form",
        { class: "account-form", onsubmit: (e) => this.addUser(e) },
        h("label", {}, "User", this.userName),
        h("label", {}, "Password", this.userPassword),
        h("label", {}, "Admin", this.userAdmin),
        h("button", { type: "submit", class: "btn", dataset: { testid: "user-add" } }, "Add user"),
      ),
      this.userError,
    );
    root.append(
      h("h2", { class: "history-title", text: "Account" }),
      h(
        "section",
        { class: "panel card" },
        h("h3", { text: "Password" }),
        h(
          "form",
          { class: "account-form", onsubmit: (e) => this.changePassword(e) },
          h("label", {}, "Current password", this.current),
          h("label", {}, "New password (8+ characters)", this.next),
          h("button", { type: "submit", class: "btn", dataset: { testid: "password-save" } }, "Change password"),
        ),
        this.pwError,
      ),
      h(
        "section",
        { class: "panel card" },
        h("h3", {}, "API tokens ", h("span", { class: "sub", text: "for scripts and Home Assistant: Authorization: Bearer <token>" })),
        h("div", { class: "table-wrap" }, h("table", {}, h("thead", {}, h("tr", {}, h("th", { text: "Name" }), h("th", { text: "Token" }), h("th", { text: "Created" }), h("th", { text: "Last used" }), h("th"))), this.tokenBody)),
        h(
          "form",
          { class: "account-form", onsubmit: (e) => this.createToken(e) },
          h("label", {}, "Name", this.tokenName),
          h("button", { type: "submit", class: "btn", dataset: { testid: "token-create" } }, "Create token"),
        ),
        this.newToken,
        this.tokenError,
      ),
      this.usersPanel,
    );
  }

  async show() {
    try {
      this.me = (await request("GET", "auth/me")).user;
      this.usersPanel.hidden = !this.me?.is_admin;
      await this.loadTokens();
      if (this.me?.is_admin) await this.loadUsers();
    } catch (e) {
      setText(this.tokenError, e.message);
    }
  }

  hide() {
    this.newToken.hidden = true;
    this.newToken.textContent = "";
  }

  async changePassword(e) {
    e.preventDefault();
    setText(this.pwError, "");
    try {
      await request("POST", "auth/password", { body: { current_password: this.current.value, new_password: this.next.value } });
      this.current.value = this.next.value = "";
      this.pwError.className = "form-ok";
      setText(this.pwError, "Password changed.");
    } catch (err) {
      this.pwError.className = "form-error";
      setText(this.pwError, err.message);
    }
  }

  async loadTokens() {
    const { tokens } = await request("GET", "auth/tokens");
    this.tokenBody.replaceChildren(
      ...tokens.map((t) =>
        h(
          "tr",
          { dataset: { testid: `token-${t.id}` } },
          h("td", { text: t.name }),
          h("td", { class: "mono", text: `${t.hint}…` }),
          h("td", { text: when(t.created) }),
          h("td", { text: when(t.last_used) }),
          h("td", {}, h("button", { type: "button", class: "btn", onclick: () => this.revoke(t.id) }, "Revoke")),
        ),
      ),
    );
    if (!tokens.length) this.tokenBody.append(h("tr", {}, h("td", { colspan: 5, class: "sub", text: "No tokens." })));
  }

  async createToken(e) {
    e.preventDefault();
    setText(this.tokenError, "");
    try {
      const t = await request("POST", "auth/tokens", { body: { name: this.tokenName.value.trim() } });
      this.tokenName.value = "";
      this.newToken.hidden = false;
      this.newToken.replaceChildren(h("strong", { text: "Copy it now, it is shown only once: " }), h("span", { class: "mono", text: t.token }));
      await this.loadTokens();
    } catch (err) {
      setText(this.tokenError, err.message);
    }
  }

  async revoke(id) {
    try {
      await request("DELETE", `auth/tokens/${id}`);
      await this.loadTokens();
    } catch (err) {
      setText(this.tokenError, err.message);
    }
  }

  async loadUsers() {
    const { users } = await request("GET", "users");
    this.userBody.replaceChildren(
      ...users.map((u) =>
        h(
          "tr",
          { dataset: { testid: `user-${u.username}` } },
          h("td", { text: u.username }),
          h("td", { text: u.is_admin ? "yes" : "" }),
          h("td", { text: when(u.last_login) }),
          h("td", {}, u.id === this.me?.id ? "" : h("button", { type: "button", class: "btn", onclick: () => this.removeUser(u.id) }, "Remove")),
        ),
      ),
    );
  }

  async addUser(e) {
    e.preventDefault();
    setText(this.userError, "");
    try {
      await request("POST", "users", { body: { username: this.userName.value.trim(), password: this.userPassword.value, is_admin: this.userAdmin.checked } });
      this.userName.value = this.userPassword.value = "";
      this.userAdmin.checked = false;
      await this.loadUsers();
    } catch (err) {
      setText(this.userError, err.message);
    }
  }

  async removeUser(id) {
    try {
      await request("DELETE", `users/${id}`);
      await this.loadUsers();
    } catch (err) {
      setText(this.userError, err.message);
    }
  }
}
