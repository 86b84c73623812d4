// Progressive enhancement only: every form works without this script (the server checks
// everything again). It checks fields as they are typed and puts the message next to the
// field, in the page's language.
(function () {
  "use strict";
  var zh = document.documentElement.lang !== "en";
  var W = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2], C = "10X98765432";
  var checks = {
    "id-number": function (v) {
      v = v.replace(/\s/g, "").toUpperCase();
      if (/^[0-9]{15}$/.test(v)) return "";
      if (!/^[0-9]{17}[0-9X]$/.test(v))
        return zh ? "须为18位（17位数字加1位数字或X），或15位旧号码" : "must be 18 characters: 17 digits and a digit or X";
      var s = 0;
      for (var i = 0; i < 17; i++) s += parseInt(v[i], 10) * W[i];
      return C[s % 11] === v[17] ? "" : (zh ? "校验码不符（可能录入有误）" : "check character does not match (typo?)");
    },
    "mobile": function (v) {
      v = v.replace(/[\s\-()]/g, "").replace(/^(\+86|0086)/, "");
      return /^1[3-9][0-9]{9}$/.test(v) ? "" : (zh ? "须为11位大陆手机号码（1[3-9]开头）" : "must be a mainland mobile number");
    }
  };
  function show(input) {
    var out = document.getElementById(input.id + "-err");
    if (!out) return;
    var message = "";
    var check = checks[input.getAttribute("data-check")];
    if (input.value !== "" && check) message = check(input.value);
    if (!message && input.validity && !input.validity.valid && input.value !== "") message = input.validationMessage;
    input.setCustomValidity(message);
    if (message) { input.setAttribute("aria-invalid", "true"); out.textContent = message; }
    else if (input.getAttribute("aria-invalid") === "true" && input.dataset.touched) {
      input.removeAttribute("aria-invalid"); out.textContent = "";
    }
  }
  document.addEventListener("input", function (e) {
    var el = e.target;
    if (el.matches && el.matches("input[data-check], input[required], input[type=date], input[type=number]")) {
      el.dataset.touched = "1";
      show(el);
    }
  });
  document.addEventListener("blur", function (e) {
    var el = e.target;
    if (el.matches && el.matches("input[data-check]")) { el.dataset.touched = "1"; show(el); }
  }, true);
})();
