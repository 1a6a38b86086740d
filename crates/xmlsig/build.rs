//! Generates bindings for the few libxml2 and xmlsec items this crate uses. The structs come
//! from the installed headers (bindgen), not from hand-written layouts: xmlsec's structs change
//! with its compile-time options (`XMLSEC_NO_SIZE_T` on Debian), and a wrong layout would
//! read garbage where the verification status should be.

use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=wrapper.h");
    println!("cargo:rerun-if-changed=build.rs");
    let xmlsec = pkg_config::Config::new()
        .probe("xmlsec1-openssl")
        .expect("xmlsec1-openssl not found by pkg-config (Debian: libxmlsec1-dev)");
    let libxml = pkg_config::Config::new()
        .probe("libxml-2.0")
        .expect("libxml-2.0 not found by pkg-config (Debian: libxml2-dev)");
    let mut clang_args: Vec<String> = Vec::new();
    for path in xmlsec.include_paths.iter().chain(&libxml.include_paths) {
        clang_args.push(format!("-I{}", path.display()));
    }
    for (name, value) in xmlsec.defines.iter().chain(&libxml.defines) {
        clang_args.push(match value {
            Some(v) => format!("-D{name}={v}"),
            None => format!("-D{name}"),
        });
    }
    let bindings = bindgen::Builder::default()
        .header("wrapper.h")
        .clang_args(&clang_args)
        .allowlist_function("xmlInitParser")
        .allowlist_function("xmlSetGenericErrorFunc")
        .allowlist_function("fopen")
        .allowlist_function("xmlReadMemory")
        .allowlist_function("xmlFreeDoc")
        .allowlist_function("xmlDocGetRootElement")
        .allowlist_function("xmlHasProp")
        .allowlist_function("xmlAddID")
        .allowlist_function("xmlSecInit")
        .allowlist_function("xmlSecCheckVersionExt")
        .allowlist_function("xmlSecErrorsDefaultCallbackEnableOutput")
        .allowlist_function("xmlSecOpenSSLAppInit")
        .allowlist_function("xmlSecOpenSSLInit")
        .allowlist_function("xmlSecOpenSSLAppKeyLoadMemory")
        .allowlist_function("xmlSecKeyDestroy")
        .allowlist_function("xmlSecDSigCtxCreate")
        .allowlist_function("xmlSecDSigCtxDestroy")
        .allowlist_function("xmlSecDSigCtxVerify")
        .allowlist_function("xmlSecDSigCtxEnableReferenceTransform")
        .allowlist_function("xmlSecDSigCtxEnableSignatureTransform")
        .allowlist_function("xmlSecDSigReferenceCtxGetPreDigestBuffer")
        .allowlist_function("xmlSecPtrListGetSize")
        .allowlist_function("xmlSecPtrListGetItem")
        .allowlist_function("xmlSecBufferGetData")
        .allowlist_function("xmlSecBufferGetSize")
        .allowlist_function("xmlSecTransformEnvelopedGetKlass")
        .allowlist_function("xmlSecTransformExclC14NGetKlass")
        .allowlist_function("xmlSecTransformInclC14NGetKlass")
        .allowlist_function("xmlSecOpenSSLTransform(RsaSha(1|256|384|512)|EcdsaSha(256|384)|Sha(1|256|384|512))GetKlass")
        .allowlist_type("xmlSecDSigCtx")
        .allowlist_type("xmlSecDSigReferenceCtx")
        .allowlist_type("xmlSecDSigStatus")
        .allowlist_type("xmlSecKeyDataFormat")
        .allowlist_type("xmlParserOption")
        .allowlist_type("xmlElementType")
        .allowlist_var("XMLSEC_DSIG_FLAGS_.*")
        .allowlist_var("XMLSEC_VERSION_.*")
        .allowlist_var("xmlSecTransformUriType.*")
        .allowlist_type("xmlSecKey")
        .layout_tests(false)
        .generate()
        .expect("generating the libxml2/xmlsec bindings failed");
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
    bindings
        .write_to_file(out.join("bindings.rs"))
        .expect("writing the bindings failed");
}
