// Submits a form marked data-autosubmit as soon as the page loads (the SAML sign-in's same-site re-post);
// its button stays for browsers without JavaScript.
document.querySelectorAll("form[data-autosubmit]").forEach((form) => form.submit());
