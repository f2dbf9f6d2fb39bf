//! Bindings to the few libxl (libxenlight) and libxentoollog functions sr-xen calls, generated
//! by bindgen from the installed `libxl.h` (Xen's `libxen-dev`), as `libxen-sys` does for
//! libxenctrl: `libxen-sys` has no libxl bindings. The allowlist keeps them to what
//! `XenDomain::config_json` and `XenDomain::destroy` need (and the types those pull in), so
//! struct layouts such as `libxl_domain_config` come from the headers, never guessed; bindgen's
//! layout assertions check them at compile time. `xsr restore --domain` adds what `xl restore`
//! calls (`libxl_domain_config_from_json`, `libxl_domain_create_restore` and its params,
//! `libxl_domain_unpause`); the hand-over of a migration `libxl_domain_rename`.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let xenlight = pkg_config::Config::new()
        .probe("xenlight")
        .expect("libxenlight (pkg-config xenlight) not found: apt-get install libxen-dev");
    pkg_config::Config::new()
        .probe("xentoollog")
        .expect("libxentoollog (pkg-config xentoollog) not found: apt-get install libxen-dev");

    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    let bindings = bindgen::Builder::default()
        // No LIBXL_API_VERSION: the current API of the installed libxl (4-argument
        // libxl_retrieve_domain_configuration and libxl_domain_resume with an ao_how).
        .header_contents("sr-xen-libxl.h", "#include <stdio.h>\n#include <libxl.h>\n#include <xentoollog.h>\n")
        .clang_args(xenlight.include_paths.iter().map(|p| format!("-I{}", p.display())))
        .allowlist_function(
            "libxl_ctx_alloc|libxl_ctx_free|libxl_domain_config_init|libxl_domain_config_dispose|\
             libxl_retrieve_domain_configuration|libxl_domain_config_to_json|libxl_domain_destroy|\
             libxl_domain_resume|xtl_createlogger_stdiostream|xtl_logger_destroy|\
             libxl_domain_config_from_json|libxl_domain_create_restore|libxl_domain_restore_params_init|\
             libxl_domain_restore_params_dispose|libxl_domain_unpause|libxl_domain_rename",
        )
        .allowlist_var("LIBXL_VERSION|XTL_STDIOSTREAM_HIDE_PROGRESS|stderr")
        .allowlist_type("xentoollog_level")
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .derive_debug(false)
        .derive_default(false)
        .generate_comments(false)
        .generate()
        .expect("bindgen failed on libxl.h");
    bindings.write_to_file(out.join("libxl.rs")).expect("writing libxl bindings");
}
