//! lua: the embedded Lua 5.4 (vendored through mlua): the offline syntax check used by
//! `uprisectl check` (which never runs job code: chunks are compiled, not called), and the
//! sandbox the daemon runs hooks and Lua gates in (`sandbox.rs`).

pub mod math;
pub mod sandbox;

use mlua::{Lua, LuaOptions, StdLib};

/// A Lua chunk that does not compile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LuaSyntaxError {
    /// 1-based line inside the chunk, when Lua names one.
    pub line: Option<u32>,
    pub message: String,
}

/// Compiles a chunk without running it.
pub fn check_syntax(code: &str, chunk_name: &str) -> Result<(), LuaSyntaxError> {
    let lua = match Lua::new_with(StdLib::NONE, LuaOptions::default()) {
        Ok(lua) => lua,
        Err(error) => {
            return Err(LuaSyntaxError {
                line: None,
                message: error.to_string(),
            });
        }
    };
    match lua.load(code).set_name(format!("={chunk_name}")).into_function() {
        Ok(_) => Ok(()),
        Err(error) => {
            let text = match &error {
                mlua::Error::SyntaxError { message, .. } => message.clone(),
                other => other.to_string(),
            };
            // Lua reports "NAME:LINE: message"; split the line number off.
            let rest = text.strip_prefix(chunk_name).and_then(|rest| rest.strip_prefix(':'));
            if let Some((line, message)) = rest.and_then(|rest| rest.split_once(':'))
                && let Ok(line) = line.parse::<u32>()
            {
                return Err(LuaSyntaxError {
                    line: Some(line),
                    message: message.trim().to_string(),
                });
            }
            Err(LuaSyntaxError {
                line: None,
                message: text,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_chunks_compile() {
        assert_eq!(check_syntax("return 1 + 1", "t"), Ok(()));
        assert_eq!(check_syntax("local x = 1\nif x then log('a') end", "t"), Ok(()));
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let error = check_syntax("local x = 1\nif x then\n", "t").unwrap_err();
        assert_eq!(error.line, Some(3));
        assert!(error.message.contains("expected"), "{}", error.message);
    }

    #[test]
    fn checking_never_runs_the_chunk() {
        // An endless loop compiles fine and must not hang the check.
        assert_eq!(check_syntax("while true do end", "t"), Ok(()));
    }
}
