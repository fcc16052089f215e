pub mod dev;
pub mod run;
pub mod validate;
